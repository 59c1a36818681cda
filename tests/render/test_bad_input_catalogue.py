"""docs/bad-inputs.md: one table of every bad input modelfunc handles and the message the user sees.

The table is generated from the test cases that drive each row, so the two cannot drift apart:

* modelfunc.yaml, score.py, environment, samples/model and ``package --out``: CASES of
  ``tests/render/test_bad_inputs.py``;
* template values: BAD_VALUES of ``tests/template/test_template.py``;
* request bodies: BAD_BODIES of ``tests/host/test_serve_http.py``;
* the Redis connection setting: BAD_CONNECTIONS of ``tests/host/test_cache.py``;
* blobs and CLI arguments: BAD_BLOBS and BAD_CLI below (driven here);
* hostile or careless input (issue 13): ``ROWS`` of ``test_hardening_config.py`` (unit), ``test_hardening_host.py``
  (host) and ``test_hardening_package.py`` (render);
* Azure ML v1 projects (issue 14): ``ROWS`` of ``tests/render/test_migration.py``.

The case lists of the other test modules live in ``tests/support/cases/`` (one module each), where both the test that
runs them and this catalogue import them: no test module imports another.

``test_the_document_is_the_cases`` fails when a row has no case, a case has no row, or a message differs.
After changing a case, regenerate the table:
``PYTHONPATH=tests .venv/bin/python tests/render/test_bad_input_catalogue.py --write``.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

import pytest
from support.blobs import error_record_of
from support.cases import hardening_config, hardening_host, hardening_package, migration
from support.cases.bad_inputs import CASES
from support.cases.cache import BAD_CONNECTIONS
from support.cases.serve_http import BAD_BODIES
from support.cases.template import BAD_VALUES
from support.core import ROOT, run_modelfunc

DOC = ROOT / "docs" / "bad-inputs.md"
WRITE = "PYTHONPATH=tests .venv/bin/python tests/render/test_bad_input_catalogue.py --write"
# Issue 13's cases (hostile or careless input): configuration and inputs; blobs, secrets and signals; packaging,
# the image, the runtime and the local host's HTTP side.
HARDENING = (hardening_config, hardening_host, hardening_package)
# Issue 14's: an Azure ML v1 project (inferenceconfig.json, its python pin, modelfunc init, sample record).
MIGRATION = (migration,)

# (id, example repo, arguments after the repo path ("{repo}" stands for it), exit code, message on stderr)
BAD_CLI = [
    ("serve-path-missing", None, ["serve", "{tmp}/no-such-dir"], 2,
     "Error: Invalid value for '[PATH]': Directory '{tmp}/no-such-dir' does not exist."),
    ("serve-setting-without-equals", "diabetes-http", ["serve", "{repo}", "--setting", "=x"], 2,
     "Error: Invalid value for --setting: '=x' is not NAME=VALUE"),
    ("serve-port-out-of-range", "diabetes-http", ["serve", "{repo}", "--port", "99999", "--no-azurite"], 1,
     "error: cannot listen on 127.0.0.1:99999: a port is a number from 0 to 65535"),
    ("serve-port-not-a-number", "diabetes-http", ["serve", "{repo}", "--port", "http"], 2,
     "Error: Invalid value for '--port': 'http' is not a valid integer."),
    ("serve-folder-without-config", None, ["serve", "{tmp}"], 2, "error: {tmp}/modelfunc.yaml: not found"),
    ("blob-test-no-connection", "diabetes-blob", ["blob-test", "{repo}"], 2,
     "error: no storage connection string: give one (--connection-string or MODELFUNC_CONNECTION_STRING), or set "
     "the trigger's setting TriggerConnectionString"),
    ("blob-test-malformed-connection", "diabetes-blob", ["blob-test", "{repo}", "--connection-string", "garbage"], 1,
     "error: the storage connection string is invalid: Connection string is either blank or malformed."),
    ("blob-test-http-without-url", "diabetes-http", ["blob-test", "{repo}"], 2,
     "error: the HTTP trigger is tested with a request: give the function URL, e.g. http://<host>/api/score"),
    ("blob-test-servicebus-without-host-url", "diabetes-servicebus", ["blob-test", "{repo}"], 2,
     "error: no Service Bus emulator exists offline: give the base URL of `modelfunc serve` to invoke the function "
     "through its admin API"),
    ("blob-test-timeout-not-a-number", "diabetes-blob", ["blob-test", "{repo}", "--timeout", "soon"], 2,
     "Error: Invalid value for '--timeout': 'soon' is not a valid float."),
    ("package-config-file-missing", "diabetes-http", ["package", "{repo}", "--config", "other.yaml", "--no-build"], 2,
     "error: {repo}/other.yaml: not found"),
    ("package-tag-invalid", "diabetes-http", ["package", "{repo}", "--tag", "bad:tag", "--no-build"], 2,
     "error: --tag: 'bad:tag' is not an image tag"),
    ("package-image-upper-case", "diabetes-http", ["package", "{repo}", "--image", "myreg.azurecr.io/Diabetes",
                                                   "--no-build"], 2,
     "error: --image: 'myreg.azurecr.io/Diabetes' is not an image repository"),
]

# (id, blob bytes, status in the error record, the start of its message): the blob's error record.
BAD_BLOBS = [
    ("blob-not-utf8", b"\xff\xfe{}", 400, "Input cannot be decoded as UTF-8"),
    ("blob-empty", b"", 400, "The body is empty; send the input as JSON"),
    ("blob-json-but-not-the-shape-run-expects", b"[1, 2, 3]", 500,
     "run() failed (TypeError); see the log for error id"),
]


# ------------------------------------------------------------------ the rows


def _area(case_id: str) -> str:
    prefixes = [(("score-", "run-"), "score.py"), (("env-", "requirements-"), "environment"),
                (("samples-", "model-", "entry-"), "repo files"), (("out-",), "CLI arguments")]
    return next((area for starts, area in prefixes if case_id.startswith(starts)), "modelfunc.yaml")


def _cell(text: str) -> str:
    """Markdown-safe: the text shows as written (no emphasis from *args, no HTML from <repo>)."""
    for char in "\\`*_|[]":
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ⏎ ")


def _bytes(raw: bytes) -> str:
    return repr(raw)[2:-1] if raw else "(empty)"  # control characters and invalid UTF-8 as \\xNN


def rows() -> list[tuple[str, str, str, str, str]]:
    """(area, id, what is wrong, the message the user sees, the test that checks it)."""
    out = []
    for param in CASES:
        bad = param.values[0]
        out.append((_area(param.id), param.id, f"{param.id.replace('-', ' ')} (example {bad.example})",
                    " … ".join(bad.expect), f"test_bad_inputs.py::test_package_rejects_bad_input[{param.id}]"))
    for i, (values, field, fragments) in enumerate(BAD_VALUES):
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())
        out.append(("template values", f"{field}-{i}", shown, f"{field}: … " + " … ".join(fragments),
                    f"test_template.py::test_bad_value_stops_generation_with_a_clear_message[{field}-{i}]"))
    for cid, style, body, ctype, status, message in BAD_BODIES:
        shown = f"{_bytes(body)} as {ctype} to a {style} run()"
        out.append(("request bodies", cid, shown, f"HTTP {status}: {message}…",
                    f"test_serve_http.py::test_bad_request_bodies_get_an_answer_with_a_message[{cid}]"))
    for cid, raw, status, message in BAD_BLOBS:
        out.append(("blobs", cid, f"{_bytes(raw)} uploaded as input/….json",
                    f"error record, status {status}: {message}…",
                    f"test_bad_input_catalogue.py::test_bad_blob_gets_an_error_record[{cid}]"))
    for cid, value, message in BAD_CONNECTIONS:
        out.append(("cache setting", f"redis-{cid}", f"RedisConnectionString={json.dumps(value)}",
                    f"log: {message} (the app runs uncached)",
                    f"test_cache.py::test_unusable_connection_setting_runs_uncached_and_says_why[{cid}]"))
    for cid, _example, args, code, message in BAD_CLI:
        out.append(("CLI arguments", cid, "modelfunc " + " ".join(args), f"exit {code}: {message}",
                    f"test_bad_input_catalogue.py::test_bad_cli_arguments[{cid}]"))
    for cases in HARDENING + MIGRATION:  # each ROWS is built from the case lists its test module runs
        out += cases.ROWS
    return out


HEADER = """\
# Bad inputs and what modelfunc says

Every bad input modelfunc handles, with the message the user sees. Each row is a test case: the table is
generated from them (`PYTHONPATH=tests .venv/bin/python tests/render/test_bad_input_catalogue.py --write`)
and `tests/render/test_bad_input_catalogue.py` fails when the two differ. In the messages, `<repo>` is the model
repo's path, `<tmp>` and `{repo}`/`{tmp}` a scratch directory, `…` a part left out, and `⏎` a line break.

Package-time errors (modelfunc.yaml, score.py, environment, repo files, `--out`) exit with code 2 and write
nothing; a request body gets a 4xx answer; a blob gets an error record at `error_path`; a cache setting that
cannot be used is logged once and the app runs without the cache.

"""


def render() -> str:
    lines = [HEADER, "| area | case | bad input | what the user sees | test |", "|---|---|---|---|---|"]
    for area, cid, what, message, test in rows():
        lines.append(f"| {area} | `{cid}` | {_cell(what)} | {_cell(message)} | `{test}` |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the document is the cases


def test_the_document_is_the_cases() -> None:
    assert DOC.is_file(), f"{DOC} is missing: run {WRITE}"
    have, want = DOC.read_text(encoding="utf-8"), render()
    if have != want:
        diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True), "docs/bad-inputs.md",
                                            "generated from the test cases", n=0))
        pytest.fail(f"docs/bad-inputs.md and the test cases differ (regenerate it with --write):\n{diff[:6000]}")


def test_at_least_forty_distinct_rows_in_every_area() -> None:
    table = rows()
    assert len(table) >= 40, len(table)
    keys = [(area, cid) for area, cid, *_ in table]
    assert len(set(keys)) == len(keys), "two cases share an id"
    areas = {area for area, *_ in table}
    assert {"modelfunc.yaml", "score.py", "environment", "template values", "request bodies", "blobs",
            "CLI arguments", "cache setting"} <= areas, areas


# ------------------------------------------------------------------ the rows driven here


@pytest.mark.parametrize(("example_name", "args", "code", "message"), [c[1:] for c in BAD_CLI],
                         ids=[c[0] for c in BAD_CLI])
def test_bad_cli_arguments(example, tmp_path: Path, example_name: str | None, args: list[str], code: int,
                           message: str) -> None:  # noqa: ANN001
    repo = example(example_name) if example_name else tmp_path
    subst = {"{repo}": str(repo), "{tmp}": str(tmp_path)}

    def fill(text: str) -> str:
        for key, value in subst.items():
            text = text.replace(key, value)
        return text

    env = {"MODELFUNC_CONNECTION_STRING": "", "TriggerConnectionString": ""}
    result = run_modelfunc(*[fill(a) for a in args], env=env, timeout=120)
    assert result.returncode == code, result.stdout + result.stderr
    assert fill(message) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (repo / "build").exists() or example_name is None or args[0] == "serve"


@pytest.mark.parametrize(("raw", "status", "message"), [c[1:] for c in BAD_BLOBS], ids=[c[0] for c in BAD_BLOBS])
def test_bad_blob_gets_an_error_record(example, serve, azurite, raw: bytes, status: int, message: str) -> None:  # noqa: ANN001
    record, host, storage, tag = error_record_of(example, serve, azurite, raw, "bad")
    assert record["status"] == status and record["blob"] == f"in-{tag}/bad.json"
    assert record["response"]["message"].startswith(message), record
    assert not storage.get_blob_client(f"out-{tag}", "bad_out.json").exists()
    stats = host.status()["blob_listeners"]["score_blob"]
    assert stats["retried"] == 0 and stats["poisoned"] == 0  # recorded once, not retried


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(render(), encoding="utf-8")
        print(f"wrote {DOC} ({len(rows())} rows)")
    else:
        sys.stdout.write(render())
