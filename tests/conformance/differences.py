"""The deliberate differences between azmlinfsrv and modelfunc: the only differences the conformance suite accepts.

Each row names the facets of an answer it explains (status, body, content-type, header:<name>; "*" for all) and
decides, from the request and the two answers, whether it applies. docs/contract.md's table is generated from these
rows (``python tests/test_conformance.py --write``): the suite fails on a difference no row explains, and on a row
that no longer explains any difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .catalogue import Req, Script
from .harness import Answer

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL = "An unexpected internal error occurred. Check the logs for more info."


def message(answer: Answer) -> str | None:
    try:
        value = json.loads(answer.body)
    except ValueError:
        return None
    return value.get("message") if isinstance(value, dict) else None


def error_id(answer: Answer) -> str | None:
    try:
        value = json.loads(answer.body)
    except ValueError:
        return None
    return value.get("error_id") if isinstance(value, dict) else None


@dataclass(frozen=True)
class Difference:
    id: str
    azmlinfsrv: str  # what azmlinfsrv does
    modelfunc: str  # what modelfunc does
    why: str
    facets: tuple[str, ...]
    applies: Callable[[Script, Req, Answer, Answer], bool]

    def explains(self, facet: str, script: Script, req: Req, oracle: Answer, modelfunc: Answer) -> bool:
        return ("*" in self.facets or facet in self.facets) and self.applies(script, req, oracle, modelfunc)


def _schema(script: Script) -> bool:
    return script.name.startswith("schema_")


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
]

BY_ID = {d.id: d for d in DIFFERENCES}
assert len(BY_ID) == len(DIFFERENCES)


def explain(facet: str, script: Script, req: Req, oracle: Answer, modelfunc: Answer) -> str | None:
    """The id of the row that explains this difference, or None."""
    for d in DIFFERENCES:
        if d.explains(facet, script, req, oracle, modelfunc):
            return d.id
    return None


def as_markdown() -> str:
    lines = ["| id | azmlinfsrv | modelfunc | why |", "|---|---|---|---|"]
    for d in DIFFERENCES:
        cells = [f"`{d.id}`", d.azmlinfsrv, d.modelfunc, d.why]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)
