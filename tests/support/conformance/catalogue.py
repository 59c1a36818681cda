"""The conformance suite's catalogue: the entry scripts (scripts/*.py, written as Azure ML users write them), what
each needs (model files, a sample, the HTTP methods its modelfunc.yaml lists) and the requests both servers get.

Every script gets every request shape in SHAPES (bodies built from its sample), plus the requests of its own.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
JSON = "application/json"
BOUNDARY = "modelfunc-conformance-7d3f"
BIG_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Req:
    """One HTTP request, sent the same way to azmlinfsrv (/score) and the local host (/api/score)."""

    id: str
    method: str = "POST"
    body: bytes | None = None
    ctype: str | None = JSON
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False
    slash: bool = False  # a trailing slash on the path


@dataclass(frozen=True)
class Script:
    name: str
    sample: Any  # a JSON value for the body, or bytes sent as they are
    sample_ctype: str = JSON
    get_query: tuple[tuple[str, str], ...] = ()
    methods: tuple[str, ...] = ("GET", "POST", "OPTIONS")
    headers: tuple[str, ...] = ()  # the script's own response headers, compared besides content-type
    model: dict[str, bytes] = field(default_factory=dict)
    extra: tuple[Req, ...] = ()
    big: bool = False  # also gets a 5 MB body
    starts: bool = True  # False: both servers must refuse to start (init() or the import fails)

    @property
    def path(self) -> Path:
        return SCRIPTS_DIR / f"{self.name}.py"

    @property
    def sample_bytes(self) -> bytes:
        return self.sample if isinstance(self.sample, bytes) else json.dumps(self.sample).encode()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, str, bytes]]) -> bytes:
    """A multipart/form-data body with a fixed boundary (so both servers get the same bytes)."""
    out = b""
    for name, value in fields.items():
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for name, (filename, ctype, data) in files.items():
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
FORM = "application/x-www-form-urlencoded"


def shapes(script: Script) -> list[Req]:
    """The request shapes every script gets."""
    sample = script.sample_bytes
    ctype = script.sample_ctype
    reqs = [
        Req("post", body=sample, ctype=ctype),
        Req("post-json-charset", body=sample, ctype="application/json; charset=utf-8"),
        Req("post-vendor-json", body=sample, ctype="application/vnd.example+json"),
        Req("post-no-content-type", body=sample, ctype=None),
        Req("post-text-plain", body=sample, ctype="text/plain"),
        Req("post-form-content-type", body=sample, ctype=FORM),  # what `curl -d` sends without -H
        Req("post-empty", body=b""),
        Req("post-no-body", body=None),
        Req("post-malformed-json", body=b'{"data": [1, 2,'),
        Req("post-not-json", body=b"hello world"),
        Req("post-not-utf8", body=b'\x80\x81{"data": 1}'),
        Req("post-latin1", body='{"data": "café"}'.encode("latin-1")),
        Req("post-bom", body=b"\xef\xbb\xbf" + sample, ctype=ctype),
        Req("post-utf16", body=sample.decode("utf-8").encode("utf-16"), ctype=ctype),
        Req("post-chunked", body=sample, ctype=ctype, chunked=True),
        Req("post-trailing-slash", body=sample, ctype=ctype, slash=True),
        Req("post-multipart", body=multipart({"data": sample.decode("utf-8", "replace")},
                                             {"file": ("rows.csv", "text/csv", b"a,b\n1,2\n")}), ctype=MULTIPART),
        Req("post-repeated-headers", body=sample, ctype=ctype,
            headers=(("X-Test", "one"), ("X-Test", "two"), ("x-unit", "kg"))),
        Req("post-query", body=sample, ctype=ctype, query=(("id", "1"), ("id", "2"))),
        Req("get", method="GET", query=script.get_query, ctype=None),
        Req("get-repeated-query", method="GET", query=(("id", "1"), ("id", "2"), ("flag", "")), ctype=None),
        Req("get-trailing-slash", method="GET", query=script.get_query, ctype=None, slash=True),
        Req("options", method="OPTIONS", ctype=None),
        Req("head", method="HEAD", ctype=None),
        Req("put", method="PUT", body=sample, ctype=ctype),
        Req("patch", method="PATCH", body=sample, ctype=ctype),
        Req("delete", method="DELETE", ctype=None),
    ]
    if script.big:
        value = json.loads(sample)
        value["_padding"] = "x" * BIG_BYTES
        reqs.append(Req("post-5mb", body=json.dumps(value).encode()))
    return reqs


def requests_for(script: Script) -> list[Req]:
    reqs = shapes(script) + list(script.extra)
    ids = [r.id for r in reqs]
    assert len(ids) == len(set(ids)), f"{script.name}: request ids repeat"
    return reqs


ROWS3 = {"data": [[1, 2, 3], [4, 5, 6]]}
LINEAR = json.dumps({"name": "linear-v1", "coef": [0.5, -1.0, 2.0], "intercept": 0.25}).encode()

SCRIPTS: list[Script] = [
    # ---- undecorated run(data): the body as a JSON string
    Script("plain_dict", ROWS3, model={"model.json": LINEAR}, get_query=(("data", "[[1,2,3]]"),), big=True,
           extra=(Req("wrong-key", body=b'{"rows": [[1, 2, 3]]}'),)),
    Script("plain_list", {"data": [[1, 2], [3, 4]]}, get_query=(("data", "[[1,2]]"),)),
    Script("plain_str", {"data": [1, 2, 3]}),
    Script("plain_bytes", {"data": [1]}),
    Script("plain_none", {"data": [1, 2]}),
    Script("plain_numpy_array", ROWS3),
    Script("plain_numpy_float", ROWS3, big=True),
    Script("plain_numpy_int", ROWS3),
    Script("plain_pandas", ROWS3),
    Script("plain_pandas_json", ROWS3),
    Script("plain_unserialisable", {"data": [[1], [1, 2]]}),
    Script("plain_nan", {"data": [1]}),
    Script("plain_unicode", {"data": ["ä", "日本"]}, big=True,
           extra=(Req("unicode-body", body='{"data": ["ü", "✓"]}'.encode()),)),
    Script("plain_raises", {"data": [[1, 2, 3]]},
           extra=(Req("wrong-width", body=b'{"data": [[1, 2]]}'), Req("not-a-list", body=b'{"data": 5}'))),
    Script("plain_try_except", {"data": [[1, 2], [3]]}, extra=(Req("bad-rows", body=b'{"data": [["a"]]}'),)),
    Script("plain_global_model", {"data": [[1, 1], [2, 0]]},
           model={"model.pkl": pickle.dumps({"bias": 1.0, "weights": [2.0, 3.0]})}),
    Script("plain_raw_text", b"a,b\n1,2\n3,4\n", sample_ctype="text/csv",
           extra=(Req("csv-no-content-type", body=b"x\ny\n", ctype=None),)),
    Script("init_fails", {"data": 1}, starts=False),
    Script("import_fails", {"data": 1}, starts=False),
    # ---- run(data, request_headers)
    Script("headers_lookup", {"data": [1, 2]}, extra=(
        Req("unit-title-case", body=b'{"data": [1]}', headers=(("X-Unit", "m"),)),
        Req("unit-upper-case", body=b'{"data": [1]}', headers=(("X-UNIT", "s"),)),
        Req("test-repeated-three", body=b'{"data": []}', headers=(("X-Test", "a"), ("X-Test", "b"), ("X-Test", "c"))),
    )),
    Script("headers_echo", {"data": [1]}, extra=(
        Req("many-headers", body=b"{}", headers=(("X-Test-One", "1"), ("x-test-two", "2"), ("X-TEST-THREE", "3"),
                                                  ("X-Unit", "kg"))),
    )),
    # ---- flask inside run()
    Script("flask_request_plain", {"data": [1]}, get_query=(("a", "1"), ("a", "2"), ("b", "x"))),
    Script("flask_jsonify", {"data": [[1, 2]]}, headers=("x-rows", "x-reason"),
           extra=(Req("no-rows", body=b'{"data": []}'),)),
    # ---- @input_schema: keyword arguments converted by inference-schema
    Script("schema_numpy", ROWS3, get_query=(("data", "[[1,2,3]]"),), big=True, extra=(
        Req("type-mismatch", body=b'{"data": "not numbers"}'),
        Req("missing-param", body=b'{"rows": [[1, 2, 3]]}'),
        Req("not-an-object", body=b"[[1, 2, 3]]"),
        Req("extra-param", body=b'{"data": [[1, 2, 3]], "other": 1}'),
        Req("ragged-rows", body=b'{"data": [[1, 2, 3], [4]]}'),
    )),
    Script("schema_numpy_returns_array", {"data": [[1, 2], [3, 4]]}),
    Script("schema_pandas_records", {"data": [{"age": 30, "income": 1000.0, "city": "Oslo"},
                                              {"age": 50, "income": 999.5, "city": "Lima"}]},
           extra=(Req("missing-column", body=b'{"data": [{"age": 30}]}'),)),
    Script("schema_pandas_split", {"data": {"columns": ["x", "y"], "index": [0, 1], "data": [[1, 2.5], [3, 4.5]]}},
           extra=(Req("records-instead", body=b'{"data": [{"x": 1, "y": 2.5}]}'),)),
    Script("schema_pandas_index", {"data": {"r1": {"height": 1.8, "weight": 80.0},
                                            "r2": {"height": 1.6, "weight": 55.0}}}),
    Script("schema_pandas_returns_frame", {"data": [{"a": 1, "b": 3}, {"a": 2, "b": 4}]}),
    Script("schema_standard", {"data": {"text": ["hello", "hi"], "top_k": 2}}, get_query=(
        ("data", '{"text": ["q"]}'),), extra=(Req("list-instead", body=b'{"data": ["a"]}'),)),
    Script("schema_multi", {"features": [[0.2, 0.9], [0.1, 0.2]], "threshold": 0.3}, extra=(
        Req("all-params", body=b'{"features": [[0.9, 0.9]], "threshold": 0.1, "labels": ["neg", "pos"]}'),
        Req("default-only", body=b'{"features": [[0.9, 0.9]]}'),
        Req("missing-features", body=b'{"threshold": 0.1}'),
    ), get_query=(("features", "[[0.5,0.6]]"), ("threshold", "0.2"))),
    Script("schema_param_type", {"Inputs": {"input1": [[1, 2]], "input2": [{"k": "a", "v": 1.5}]}}),
    Script("schema_headers", {"data": [1, 2, 3]}, extra=(
        Req("with-unit", body=b'{"data": [5]}', headers=(("X-Unit", "kg"),)),
    )),
    Script("schema_raises", {"data": {"divisor": 4}}, extra=(
        Req("divide-by-zero", body=b'{"data": {"divisor": 0}}'),
        Req("divisor-text", body=b'{"data": {"divisor": "x"}}'),
    )),
    # ---- @rawhttp: the request itself; AMLResponse back
    Script("raw_echo", {"data": [1, 2]}, big=True, get_query=(("q", "1"), ("q", "2"), ("empty", "")), extra=(
        Req("binary-body", body=bytes(range(256)), ctype="application/octet-stream"),
        Req("binary-chunked", body=bytes(range(256)) * 64, ctype="application/octet-stream", chunked=True),
    )),
    Script("raw_methods", {"data": 1}, methods=("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
           get_query=(("echo", "hi"), ("id", "7"), ("id", "8"))),
    Script("raw_status_headers", {"data": 1}, headers=("x-model-version", "cache-control"), extra=tuple(
        Req(f"status-{code}", method="GET", query=(("status", str(code)),), ctype=None)
        for code in (201, 202, 204, 304, 400, 404, 418, 500, 503)
    ) + (Req("own-content-type", method="GET", query=(("ctype", "application/xml"),), ctype=None),
         Req("text-content-type", method="GET", query=(("ctype", "text/plain; charset=latin-1"),), ctype=None))),
    Script("raw_binary", {"data": 1}, extra=(
        Req("echo-binary", body=bytes(range(256)) * 8, ctype="application/octet-stream", query=(("echo", "1"),)),
    )),
    Script("raw_form_files", {"data": 1}, extra=(
        Req("form-urlencoded", body=b"a=1&a=2&b=%C3%A9", ctype=FORM),
        Req("files", body=multipart({"note": "two files"}, {
            "image": ("pic.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
            "table": ("t.csv", "text/csv", b"x,y\n1,2\n")}), ctype=MULTIPART),
        Req("files-chunked", ctype=MULTIPART, chunked=True,
            body=multipart({}, {"blob": ("b.bin", "application/octet-stream", bytes(range(256)) * 40)})),
    )),
    Script("raw_json", {"data": [[1], [2]]}),
    Script("raw_no_content", {"data": 1}, headers=("etag",), extra=(
        Req("not-modified", method="GET", ctype=None, headers=(("If-None-Match", '"v1"'),)),
    )),
    Script("raw_cookies", {"data": 1}, headers=("set-cookie", "vary")),
    Script("raw_options", {"data": [1, 2]}, headers=("access-control-allow-origin", "access-control-allow-methods"),
           extra=(Req("preflight", method="OPTIONS", ctype=None, headers=(
               ("Origin", "https://example.org"), ("Access-Control-Request-Method", "POST"))),)),
    Script("raw_send_file", {"data": 1}, headers=("content-disposition", "x-made"),
           extra=(Req("made", method="GET", query=(("kind", "made"),), ctype=None),)),
    Script("raw_text_body", b"three words here", sample_ctype="text/plain; charset=utf-8", extra=(
        Req("latin1-charset", body="olé café".encode("latin-1"), ctype="text/plain; charset=latin-1"),
    )),
    Script("raw_errors", {"data": 1}, headers=("retry-after",), extra=tuple(
        Req(f"mode-{mode}", method="GET", query=(("mode", mode),), ctype=None)
        for mode in ("400", "500", "503", "raise")
    )),
    Script("raw_remote_addr", {"data": 1}),
    Script("raw_flask_global", {"data": 1}, get_query=(("k", "v"),)),
    Script("raw_plain_dict", {"data": 1}, extra=tuple(
        Req(f"kind-{kind}", method="GET", query=(("kind", kind),), ctype=None) for kind in ("none", "list", "str")
    )),
]

BY_NAME = {s.name: s for s in SCRIPTS}
assert len(BY_NAME) == len(SCRIPTS)

# ---------------------------------------------------------------------------------- the other triggers
# A blob or a Service Bus message is a body with (at most) a content type: it has no method, path, headers or query.
# What azmlinfsrv answers to the same body POSTed to /score is what the blob and the message paths must answer.
TRIGGERS = ("blob", "message")
TRIGGER_NAMES = {"blob": "blob trigger", "message": "Service Bus queue trigger"}
BLOB_CONTAINER = "input"  # the blob trigger's default input_path: input/{blobname}.json


def trigger_requests(script: Script) -> list[Req]:
    """The requests whose azmlinfsrv equivalent is "a body in, an answer out": a POST with a body to /score (the
    trailing-slash ones excluded: azmlinfsrv answers those 404 by route, whatever the body). The blob gets the body
    with the request's content type (an upload without one gets application/octet-stream), the message likewise (a
    message without one has none)."""
    if not script.starts:
        return []
    return [r for r in requests_for(script) if r.method == "POST" and r.body is not None and not r.slash]


def blob_name(req: Req) -> str:
    """The blob's name as the host passes it (container/name), under the default input_path."""
    return f"{BLOB_CONTAINER}/{req.id}.json"
