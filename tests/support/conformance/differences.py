"""The deliberate differences between azmlinfsrv and modelfunc: the only differences the conformance suite accepts.

Each row names the facets of an answer it explains (status, body, content-type, header:<name>; "*" for all) and
decides, from the request and the two answers, whether it applies. docs/contract.md's table is generated from these
rows (``PYTHONPATH=tests python tests/host/test_conformance.py --write``): the suite fails on a difference no row
explains, and on a row that no longer explains any difference. A row also names the triggers it is about: ``http``
(the HTTP answer of `modelfunc serve`), ``blob`` and ``message`` (the runtime's blob and Service Bus paths given the
same body, compare.trigger_answer).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .catalogue import Req, Script
from .harness import Answer

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL = "An unexpected internal error occurred. Check the logs for more info."


def _field(answer: Answer, name: str) -> str | None:
    """A field of the answer's JSON object body (None: no such field, or the body is no JSON object)."""
    try:
        value = json.loads(answer.body)
    except ValueError:
        return None
    return value.get(name) if isinstance(value, dict) else None


def message(answer: Answer) -> str | None:
    return _field(answer, "message")


def error_id(answer: Answer) -> str | None:
    return _field(answer, "error_id")


@dataclass(frozen=True)
class Difference:
    id: str
    azmlinfsrv: str  # what azmlinfsrv does
    modelfunc: str  # what modelfunc does
    why: str
    facets: tuple[str, ...]
    applies: Callable[[Script, Req, Answer, Answer], bool]
    triggers: tuple[str, ...] = ("http",)

    def explains(self, facet: str, script: Script, req: Req, oracle: Answer, modelfunc: Answer,
                 trigger: str = "http") -> bool:
        return (trigger in self.triggers and ("*" in self.facets or facet in self.facets)
                and self.applies(script, req, oracle, modelfunc))


ALL = ("http", "blob", "message")
BODY_TRIGGERS = ("blob", "message")
WHERE = {"http": "HTTP", "blob": "blob", "message": "Service Bus"}


def _schema(script: Script) -> bool:
    return script.name.startswith("schema_")


def _raw(script: Script) -> bool:
    return script.name.startswith("raw_")


def _undecorated(script: Script) -> bool:
    """run(data) or run(data, request_headers): the body as a string."""
    return not _schema(script) and not _raw(script)


def json_object(answer: Answer) -> dict:
    try:
        value = json.loads(answer.body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
OCTET_STREAM = "application/octet-stream"
# The catalogue scripts whose answers describe the request run() was given (its method, path, query, headers or
# client): on a blob or a message they describe the request the runtime makes of it.
DESCRIBE_THE_REQUEST = ("raw_echo", "raw_remote_addr", "raw_flask_global", "raw_binary", "flask_request_plain",
                        "headers_echo", "headers_lookup", "schema_headers")


DIFFERENCES: list[Difference] = [
    Difference(
        "method-not-listed",
        "answers every method on /score: GET, POST and OPTIONS reach the server (HEAD as GET), others get 405 "
        "with a JSON message",
        "a method the function's `methods` (modelfunc.yaml) does not list gets an empty 404, HEAD included",
        "The Functions host routes by the function's methods and answers any other with 404, not 405 "
        "(azure-functions-host#10098), and does not map HEAD to GET (#11625); modelfunc.yaml lists the methods "
        "(GET, POST, PUT, PATCH, DELETE, OPTIONS), and the local host answers as the Functions host does.",
        ("*",),
        lambda s, r, o, m: r.method not in s.methods and m.status == 404 and m.body == b"",
    ),
    Difference(
        "method-listed-reaches-run",
        "never passes PUT, PATCH or DELETE to run(): its route answers 405 itself",
        "passes every method modelfunc.yaml lists to a @rawhttp run(), which answers it",
        "Listing a method in modelfunc.yaml is how a user asks for it; a @rawhttp run() that does not want it "
        "answers 405 itself.",
        ("body", "content-type"),
        lambda s, r, o, m: r.method in s.methods and r.method in ("PUT", "PATCH", "DELETE") and o.status == 405,
    ),
    Difference(
        "trailing-slash",
        "answers /score/ with 404",
        "serves /api/score/ as /api/score",
        "ASP.NET Core routing in the Functions host matches a route with or without a trailing slash "
        "(azure-functions-host#969 shows it); the local host does the same.",
        ("*",),
        lambda s, r, o, m: r.slash and o.status == 404,
    ),
    Difference(
        "error-id",
        f'a 500 whose body says only "{RUN_FAILED}" (run() raised) or "{INTERNAL}" (its answer is not JSON)',
        "the same status with a message naming the exception type, and an `error_id` that is also in the log "
        "beside the traceback",
        "A user can find the traceback of a failed request in the Functions log (Application Insights) by its id.",
        ("body",),
        lambda s, r, o, m: o.status == m.status == 500 and message(o) in (RUN_FAILED, INTERNAL)
        and error_id(m) is not None,
        triggers=ALL,
    ),
    Difference(
        "numpy-serialised",
        f"a 500 (\"{INTERNAL}\") when run() returns a numpy array or a numpy integer, which json.dumps cannot "
        "write (a numpy float64 is a float and passes)",
        "200 with the array as JSON lists (and numpy scalars as numbers): numpy values are serialised",
        "Returning `model.predict(x)` without `.tolist()` is the most common first try; modelfunc answers it "
        "instead of failing.",
        ("status", "body"),
        lambda s, r, o, m: o.status == 500 and message(o) == INTERNAL and m.status == 200,
        triggers=ALL,
    ),
    Difference(
        "schema-mismatch-400",
        f"a 500 (\"{RUN_FAILED}\", x-ms-run-function-failed: True) when inference-schema cannot convert the input "
        "to run()'s parameter types",
        "400 with inference-schema's reason: the input does not match run()'s input schema",
        "The request is wrong, not the model: a 4xx tells the client to fix it, and does not count as a failure "
        "of the app (health checks, alerts, retries).",
        ("status", "body", "header:x-ms-run-function-failed"),
        lambda s, r, o, m: _schema(s) and o.status == 500 and m.status == 400
        and (message(m) or "").startswith("The input does not match run()'s input schema"),
        triggers=ALL,
    ),
    Difference(
        "undecodable-400",
        f"a 500 (\"{INTERNAL}\") for an @input_schema body that is not UTF-8, UTF-16 or UTF-32 (the decoding "
        "error escapes its parser)",
        "400: the input cannot be decoded",
        "The request is wrong, not the model; azmlinfsrv itself answers 400 for the same body sent to an "
        "undecorated run().",
        ("status", "body"),
        lambda s, r, o, m: o.status == 500 and m.status == 400
        and (message(m) or "").startswith("Input cannot be decoded"),
        triggers=ALL,
    ),
    Difference(
        "304-content-type",
        "a 304 without Content-Type (werkzeug drops entity headers from a 304)",
        "a 304 with Content-Type: application/octet-stream",
        "The azure-functions library adds a content type to every HttpResponse that has none "
        "(azure.functions.http.HttpResponseConverter.encode: `if 'content-type' not in headers`), and the host "
        "sends it; harmless on a 304, which has no body.",
        ("content-type",),
        lambda s, r, o, m: o.status == m.status == 304 and "content-type" not in dict(o.headers),
    ),
    Difference(
        "trigger-not-json-400",
        "gives an undecorated run() any body as a string: run() parses it (its failure is a 500) or reads it as "
        "text",
        "a blob or a message whose content type is JSON (given, or for a blob guessed from its name) but whose body "
        "is not JSON (empty, malformed, a byte-order mark, not JSON at all) gets a 400 before run() is called: an "
        "error record for the blob, a failed (retried, then dead-lettered) message",
        "A file or a message that is not the JSON it says it is is bad input, not a failure of the model: it gets "
        "a 400 that says what is wrong with it (in the error record; for a message, in the exception the Functions "
        "log shows) before run() sees it. Send text as text (`text/plain`, a blob name ending `.txt` or `.csv`).",
        ("status", "body"),
        lambda s, r, o, m: _undecorated(s) and m.status == 400
        and (message(m) or "").startswith(("The body is not valid JSON", "The body is empty")),
        triggers=BODY_TRIGGERS,
    ),
    Difference(
        "blob-content-type-from-name",
        "takes a body without Content-Type (or `application/octet-stream`) for what it says: not JSON, so "
        "@input_schema answers 415 and `request.get_json()` is None",
        "a blob uploaded without a content type, or with `application/octet-stream` (what Azure Storage gives an "
        "upload that names none), gets the one its name implies: `input/x.json` is `application/json`",
        "An upload that names no content type is stored as `application/octet-stream` (the storage SDKs' "
        "`upload_blob`, the REST API), and the trigger's path (`input/{blobname}.json`) already says what the "
        "blobs are.",
        ("status", "body"),
        lambda s, r, o, m: r.ctype in (None, OCTET_STREAM),
        triggers=("blob",),
    ),
    Difference(
        "message-without-content-type-is-json",
        "answers 415 to an @input_schema body without Content-Type",
        "reads a message without a content type as JSON for @input_schema",
        "Service Bus senders often set no content type (it is optional, and a property of the message, not a "
        "header); the queue carries the app's input, which is JSON.",
        ("status", "body"),
        lambda s, r, o, m: r.ctype is None and _schema(s),
        triggers=("message",),
    ),
    Difference(
        "trigger-form-body",
        "gives an undecorated run() an empty string for a form or multipart body (Flask parsed it into "
        "`request.form` and `request.files`)",
        "gives an undecorated run() the blob or the message as it is, whatever its content type",
        "A blob or a message is the input itself, not a form a browser posted: scoring an empty string instead "
        "would silently answer the wrong question.",
        ("status", "body"),
        lambda s, r, o, m: _undecorated(s) and (r.ctype or "").startswith(FORM_TYPES),
        triggers=BODY_TRIGGERS,
    ),
    Difference(
        "trigger-is-no-request",
        "gives run() the client's request: its path, query, headers and address",
        "gives run() a request made of the blob or the message: a POST to `/blob/<container>/<name>` or `/message` "
        "with the body, its length and its content type, no query, no client address (`request.remote_addr` is "
        "empty) and no other headers (a blob's name is in `X-Ms-Blob-Name`)",
        "A blob or a message has no HTTP request behind it; the request a @rawhttp run() (or `flask.request`, or "
        "`request_headers`) gets carries what the trigger has. A script that reads parameters from the query or "
        "headers takes them from the body on these triggers.",
        ("body",),
        lambda s, r, o, m: (s.name in DESCRIBE_THE_REQUEST and o.status == m.status
                            and (bool(r.query or r.headers or r.chunked) or s.name in ("raw_echo", "raw_remote_addr")))
        # a chunked request has no length; a blob or message always has one
        or (r.chunked and o.status == m.status and json_object(o).get("length") is None
            and isinstance(json_object(m).get("length"), int)),
        triggers=BODY_TRIGGERS,
    ),
]

# Defects of the runtime the blob and message paths show (generator/modelfunc/runtime/modelfunc_runtime.py): not
# deliberate, so not in docs/contract.md. Each has a failing test of its own in tests/host/test_conformance.py (named in
# its ``why``); the conformance tests accept the difference meanwhile, so that they catch any other. Remove the entry
# when its test passes (the suite then fails on an entry no difference needs any more).
DEFECTS: list[Difference] = []  # defects found and not fixed yet: each with its failing test (none now)


BY_ID = {d.id: d for d in DIFFERENCES + DEFECTS}
assert len(BY_ID) == len(DIFFERENCES) + len(DEFECTS)


def explain(facet: str, script: Script, req: Req, oracle: Answer, modelfunc: Answer, trigger: str = "http"
            ) -> str | None:
    """The id of the row (or known defect) that explains this difference, or None."""
    for d in DEFECTS + DIFFERENCES:
        if d.explains(facet, script, req, oracle, modelfunc, trigger):
            return d.id
    return None


def as_markdown() -> str:
    lines = ["| id | trigger | azmlinfsrv | modelfunc | why |", "|---|---|---|---|---|"]
    for d in DIFFERENCES:
        cells = [f"`{d.id}`", ", ".join(WHERE[t] for t in d.triggers), d.azmlinfsrv, d.modelfunc, d.why]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)
