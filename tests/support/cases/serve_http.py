"""The bad request bodies host/test_serve_http.py sends, also rows of docs/bad-inputs.md."""

from __future__ import annotations

# (id, style, body, content type, status, the start of the message): also rows of docs/bad-inputs.md.
# An undecorated run(data) gets the body as it is, as under azmlinfsrv (it may parse it itself); @input_schema's
# refusals use azmlinfsrv's own words (docs/contract.md).
BAD_BODIES = [
    ("plain-truncated-json", "plain", b'{"data": [[1, 2,', "application/json", 500,
     "run() failed (JSONDecodeError); see the log for error id"),
    ("plain-not-utf8", "plain", b"\xff\xfe\x00", "application/json", 400, "Input cannot be decoded as UTF-8"),
    ("schema-truncated-json", "schema", b'{"data": [[1, 2,', "application/json", 400,
     "POST body could not be decoded as JSON: Expecting value"),
    ("schema-empty", "schema", b"", "application/json", 400, "POST body is empty. Expecting a JSON dictionary."),
    ("schema-not-object", "schema", b'[[1, 2]]', "application/json", 400, "POST body should be a JSON dictionary."),
    ("schema-missing-param", "schema", b'{"rows": [[1, 2]]}', "application/json", 400,
     "A value is not provided for the 'data' parameter."),
    ("schema-type-mismatch", "schema", b'{"data": "not numbers"}', "application/json", 400,
     "The input does not match run()'s input schema"),
    ("schema-wrong-content-type", "schema", b'{"data": [[1]]}', "text/csv", 415,
     "Expects Content-Type to be application/json"),
]
