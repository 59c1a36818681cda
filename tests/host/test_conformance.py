"""Conformance with Azure ML's own scoring server: every entry script in tests/support/conformance/scripts/ runs under
azmlinfsrv (azureml-inference-server-http, the oracle) and under `modelfunc serve`, side by side, and both get the
same requests (tests/support/conformance/catalogue.py). Status, body, content type, the script's own headers and
x-ms-run-function-failed are compared; every difference must be a row of docs/contract.md's table of deliberate
differences (tests/support/conformance/differences.py), and every row must still explain a difference.

The blob and Service Bus triggers get the same bodies: every POST with a body is also pushed through the runtime's
blob path and its Service Bus path (tests/support/conformance/triggers.py, with the azure.functions objects the Python
worker passes), and what they write — the output blob or the error record, the output message or the exception that has
the message retried — is compared with azmlinfsrv's HTTP answer to the same body; and a few scripts' blob apps run
end to end on Azurite, their output blobs compared byte for byte with azmlinfsrv's answers.

After changing a row, regenerate the table:
``PYTHONPATH=tests .venv/bin/python tests/host/test_conformance.py --write``.
The oracle's venv comes from ``make .venv-aml/.installed`` (part of ``make setup``).
"""

from __future__ import annotations

import collections
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.blobs import wait_for_blob
from support.conformance import shared
from support.conformance.catalogue import (
    BY_NAME,
    SCRIPTS,
    TRIGGER_NAMES,
    TRIGGERS,
    Req,
    requests_for,
    trigger_requests,
)
from support.conformance.compare import Diff, compare_run, compare_triggers
from support.conformance.differences import DEFECTS, DIFFERENCES, as_markdown, explain
from support.conformance.harness import (
    Run,
    Zygote,
    oracle_python,
    start_blob_app,
    stop,
)
from support.core import ROOT
from support.docs import check_generated_block, write_generated_block

DOC = ROOT / "docs" / "contract.md"
START, END = "<!-- deliberate-differences:start -->", "<!-- deliberate-differences:end -->"
WRITE = "PYTHONPATH=tests .venv/bin/python tests/host/test_conformance.py --write"
ORACLE = oracle_python()

needs_oracle = pytest.mark.skipif(
    ORACLE is None, reason="azmlinfsrv is not installed: `make .venv-aml/.installed` creates its venv")
# The runs are shared with tests/host/test_openapi.py (support/conformance/shared.py): one worker runs both modules.
pytestmark = shared.MODULE_MARKS


def _report_file(request: pytest.FixtureRequest) -> Path:
    """conformance.txt in pytest's base temporary folder (under xdist, the worker's): nothing written in the repo."""
    return request.getfixturevalue("tmp_path_factory").getbasetemp() / "conformance.txt"


def _report(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Lines for the test output (shown even with output captured: -q, CI) and for conformance.txt (_report_file)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)
    with _report_file(request).open("a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


@pytest.fixture(scope="module")
def zygotes(request: pytest.FixtureRequest) -> dict[str, Zygote]:
    """The fork servers of azmlinfsrv and modelfunc (the blob apps end to end fork from them), shared with
    test_openapi.py and closed when pytest ends."""
    return shared.zygotes(request.config)


@pytest.fixture(scope="module")
def runs(zygotes: dict[str, Zygote], tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> dict[str, Run]:
    started = time.monotonic()
    result = shared.runs([s.name for s in SCRIPTS], request.config, tmp_path_factory)
    seconds = time.monotonic() - started
    n_requests = sum(len(r.answers) for r in result.values())
    per_script = [len(requests_for(s)) for s in SCRIPTS if s.starts]
    refused = sum(1 for s in SCRIPTS if not s.starts)
    lines = [f"conformance with azmlinfsrv {shared.oracle_version()}: {len(SCRIPTS)} entry scripts × "
             f"{min(per_script)}-{max(per_script)} requests = {n_requests} request pairs ({refused} scripts refuse to "
             f"start on both servers) in {seconds:.0f} s"]
    per_body = [len(trigger_requests(s)) for s in SCRIPTS if trigger_requests(s)]
    for trigger in TRIGGERS:
        n_bodies = sum(len(r.triggers.get(trigger, {})) for r in result.values())
        lines.append(f"  the same bodies on the {TRIGGER_NAMES[trigger]}: {len(per_body)} entry scripts × "
                     f"{min(per_body)}-{max(per_body)} POST bodies = {n_bodies} body pairs (azmlinfsrv's HTTP answer "
                     f"| the runtime's {trigger} path)")
    _report_file(request).write_text("", encoding="utf-8")
    _report(request, lines)
    return result


def _explained(run: Run) -> tuple[list[Diff], collections.Counter[str]]:
    """The differences of the HTTP answers no row explains, and how many each row explains."""
    reqs = {r.id: r for r in requests_for(run.script)}
    unexplained, rows = [], collections.Counter()
    for diff in compare_run(run):
        if diff.facet == "start":
            unexplained.append(diff)
            continue
        oracle, modelfunc = run.answers[diff.request]
        row = explain(diff.facet, run.script, reqs[diff.request], oracle, modelfunc)
        if row is None:
            unexplained.append(diff)
        else:
            rows[row] += 1
    return unexplained, rows


def _explained_triggers(run: Run) -> tuple[list[Diff], collections.Counter[str]]:
    """The differences of the blob and message paths no row explains, and how many each row explains."""
    reqs = {r.id: r for r in trigger_requests(run.script)}
    unexplained, rows = [], collections.Counter()
    for diff, answer in compare_triggers(run):
        row = explain(diff.facet, run.script, reqs[diff.request], run.answers[diff.request][0], answer, diff.trigger)
        if row is None:
            unexplained.append(diff)
        else:
            rows[row] += 1
    return unexplained, rows


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


@needs_oracle
@pytest.mark.parametrize("name", [s.name for s in SCRIPTS])
def test_script_answers_as_azmlinfsrv_does(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    expected = {"azmlinfsrv": run.script.starts, "modelfunc": run.script.starts}
    assert run.started == expected, (
        f"{name}: started {run.started}, expected {expected}\n--- azmlinfsrv log:\n{_tail(run.logs['azmlinfsrv'])}"
        f"\n--- modelfunc log:\n{_tail(run.logs['modelfunc'])}")
    if not run.script.starts:  # both refused, each for the script's own error
        for server, log in run.logs.items():
            assert "not_installed_scoring_helpers" in log or "missing-model.pkl" in log, f"{server}:\n{_tail(log)}"
        return
    assert len(run.answers) == len(requests_for(run.script))
    unexplained, _ = _explained(run)
    assert not unexplained, (
        f"{len(unexplained)} difference(s) from azmlinfsrv that no row of docs/contract.md explains (fix modelfunc, or "
        "add a row to tests/support/conformance/differences.py with its reason):\n"
        + "\n".join(f"  {d}" for d in unexplained))


@needs_oracle
@pytest.mark.parametrize("name", [s.name for s in SCRIPTS if trigger_requests(s)])
def test_the_blob_and_the_message_answer_as_azmlinfsrv_does(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert all(run.started.values()), f"{name}: the servers did not start: {run.started}"
    assert sorted(run.triggers) == sorted(TRIGGERS), (
        f"{name}: the trigger driver recorded nothing (tests/support/conformance/triggers.py):\n"
        f"{_tail(run.logs.get('triggers', ''))}")
    unexplained, _ = _explained_triggers(run)
    assert not unexplained, (
        f"{len(unexplained)} difference(s) between azmlinfsrv's HTTP answer and the blob or message path given the "
        "same body that no row of docs/contract.md explains (fix modelfunc, or add a row to "
        "tests/support/conformance/differences.py with its reason):\n" + "\n".join(f"  {d}" for d in unexplained))


@needs_oracle
def test_every_deliberate_difference_still_differs(runs: dict[str, Run]) -> None:
    assert len(SCRIPTS) >= 30
    rows: collections.Counter[str] = collections.Counter()
    for run in runs.values():
        rows.update(_explained(run)[1])
        rows.update(_explained_triggers(run)[1])
    stale = [d.id for d in DIFFERENCES if rows[d.id] == 0]
    assert not stale, f"rows of docs/contract.md that no longer differ (remove them): {stale}; in use: {dict(rows)}"
    fixed = [d.id for d in DEFECTS if rows[d.id] == 0]
    assert not fixed, f"known defects no difference shows any more (remove them from DEFECTS): {fixed}"


# ---------------------------------------------------------------------------------- blob apps end to end, on Azurite
# The real transport for a few scripts: `modelfunc serve` packages each script's blob-trigger app and runs its blob
# listener on Azurite; a body uploaded as a blob comes back as the output blob, byte for byte azmlinfsrv's answer to
# the same body POSTed to /score (or, for a failure, as an error record with azmlinfsrv's status).

END_TO_END = {"plain_dict": ("post", "wrong-key"),  # a JSON answer; run() raising (azmlinfsrv: 500)
              "plain_str": ("post",),  # a string
              "schema_numpy": ("post",),  # @input_schema with numpy
              "raw_binary": ("post",)}  # @rawhttp, an image: binary bytes


@needs_oracle
@pytest.mark.azurite
def test_blob_apps_on_azurite_answer_byte_for_byte(runs: dict[str, Run], zygotes: dict[str, Zygote], azurite: Any,
                                                    tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from azure.storage.blob import BlobServiceClient, ContentSettings

    started = time.monotonic()
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    tag = uuid.uuid4().hex[:8]
    apps = [start_blob_app(BY_NAME[name], tmp_path, zygotes["modelfunc"], azurite.connection_string, f"{tag}{i}")
            for i, name in enumerate(END_TO_END)]
    try:
        for app in apps:
            assert app.ready(), f"{app.script.name}: the blob app did not start:\n{_tail(app.log.read_text())}"
        uploads: list[tuple[Any, Req]] = []
        for app in apps:
            reqs = {r.id: r for r in trigger_requests(app.script)}
            for rid in END_TO_END[app.script.name]:
                req = reqs[rid]
                settings = ContentSettings(content_type=req.ctype) if req.ctype else None
                storage.get_blob_client(app.containers["input"], f"{req.id}.json").upload_blob(
                    req.body, content_settings=settings)
                uploads.append((app, req))
        for app, req in uploads:
            oracle = runs[app.script.name].answers[req.id][0]
            assert oracle.status is not None
            if oracle.status < 400:
                output = wait_for_blob(storage, app.containers["output"], f"{req.id}_out.json")
                assert output == oracle.body, (f"{app.script.name} / {req.id}: the output blob is not azmlinfsrv's "
                                               f"answer\n  azmlinfsrv: {oracle.body[:300]!r}\n  blob: {output[:300]!r}")
            else:
                record = json.loads(wait_for_blob(storage, app.containers["error"], f"{req.id}_error.json"))
                assert record["status"] == oracle.status, (app.script.name, req.id, record)
                assert record["blob"] == f"{app.containers['input']}/{req.id}.json"
                assert record["error_id"] and record["error_id"] in app.log.read_text()  # its traceback is logged
                assert not storage.get_blob_client(app.containers["output"], f"{req.id}_out.json").exists()
    finally:
        stop([app.pid for app in apps])
    _report(request, [f"  end to end on Azurite: {len(apps)} blob-trigger apps ({', '.join(END_TO_END)}), "
                      f"{len(uploads)} uploaded bodies: each output blob byte for byte azmlinfsrv's answer (a failure: "
                      f"an error record with its status) in {time.monotonic() - started:.0f} s"])


def test_the_document_lists_the_rows() -> None:
    check_generated_block(DOC, START, END, as_markdown(), "tests/support/conformance/differences.py", WRITE)


# ---------------------------------------------------------------------------------- the Azure path, without a host
# The Functions host hands the Python worker a request whose repeated query parameters and headers are joined by
# commas and whose header names are lower-cased (azure-functions-host GrpcMessageConversionExtensions.ToRpcHttp), and
# takes back what azure.functions' own converter makes of the HttpResponse. The runtime is driven here with exactly
# those objects of the real library.


def _entry(tmp_path: Path, script: str) -> Any:
    from modelfunc.runtime.modelfunc_runtime import EntryScript

    path = tmp_path / "score.py"
    path.write_text(script)
    entry = EntryScript(path, model_dir=tmp_path)
    entry.wait_ready()
    return entry


RAW_ECHO = """\
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    if request.method == "DELETE":
        return AMLResponse(None, 204)
    response = AMLResponse({"ids": request.args.getlist("id"), "addr": request.remote_addr,
                            "body": request.get_data(as_text=True)}, 200, json_str=True)
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2")
    response.headers.add("Vary", "Accept")
    response.headers.add("Vary", "X-Unit")
    return response
"""


def test_the_worker_request_and_the_library_response(tmp_path: Path) -> None:
    import azure.functions as func
    from azure.functions.http import HttpResponseConverter

    entry = _entry(tmp_path, RAW_ECHO)
    req = func.HttpRequest(method="POST", url="https://app.azurewebsites.net/api/score?id=1&id=2",
                           headers={"content-type": "text/plain", "transfer-encoding": "chunked",
                                    "x-forwarded-for": "203.0.113.9:52311"},
                           params={"id": "1,2"}, body=b"chunked body, already whole")
    value = HttpResponseConverter.encode(entry.handle_http(req), expected_type=None).value
    assert json.loads(value["body"].value) == {"ids": ["1", "2"], "addr": "203.0.113.9",
                                               "body": "chunked body, already whole"}
    headers = {name: datum.value for name, datum in value["headers"].items()}
    assert headers["vary"] == "Accept, X-Unit"  # one value per name reaches the host: joined, not dropped
    assert [m.OutputString() for c in value["cookies"] for m in c.values()] == ["a=1; Path=/", "b=2"]

    no_content = entry.handle_http(func.HttpRequest(method="DELETE", url="http://x/api/score", headers={},
                                                    body=b""))
    assert (no_content.status_code, no_content.get_body()) == (204, b"")


def test_request_headers_are_spelt_as_azmlinfsrv_spells_them(tmp_path: Path) -> None:
    import azure.functions as func

    entry = _entry(tmp_path, "def init():\n    pass\n\n\ndef run(data, request_headers):\n"
                             "    return dict(request_headers)\n")
    req = func.HttpRequest(method="POST", url="http://x/api/score", body=b"{}",
                           headers={"x-unit": "kg", "x-test": "one,two", "content-type": "application/json"})
    assert json.loads(entry.handle_http(req).get_body()) == {"X-Unit": "kg", "X-Test": "one,two",
                                                             "Content-Type": "application/json"}


# Defects of the runtime's blob and message paths the conformance suite found (and that are fixed): a binary answer
# to a message, a message without a content type, a blob or message request without Content-Length.

RAW_PNG = """\
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse

PNG = b"\\x89PNG\\r\\n\\x1a\\n" + bytes(range(256))


def init():
    pass


@rawhttp
def run(request):
    return AMLResponse(PNG, 200, {"Content-Type": "image/png"})
"""

RAW_REQUEST = """\
from azureml.contrib.services.aml_request import rawhttp


def init():
    pass


@rawhttp
def run(request):
    return {"content_type": request.content_type, "length": request.content_length,
            "headers": sorted(request.headers.keys())}
"""


def test_a_message_whose_answer_is_not_utf8_is_answered(tmp_path: Path) -> None:
    from azure.functions.servicebus import ServiceBusMessageOutConverter
    from support.conformance.triggers import Out, message_input

    entry = _entry(tmp_path, RAW_PNG)
    output = Out()
    entry.handle_message(message_input(Req("png", body=b"{}")), output, Out())  # run() answered: not a failure
    datum = ServiceBusMessageOutConverter.encode(output.get(), expected_type=bytes)  # func.Out[bytes]
    sent = datum.value.encode() if datum.type == "string" else datum.value
    assert sent == b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # what azmlinfsrv answers: the bytes as they are


def test_a_message_without_a_content_type_has_none(tmp_path: Path) -> None:
    from support.conformance.triggers import Out, message_input

    entry = _entry(tmp_path, RAW_REQUEST)
    output = Out()
    entry.handle_message(message_input(Req("no-type", body=b'{"data": 1}', ctype=None)), output, Out())
    answer = json.loads(output.get())
    assert answer["content_type"] is None and "Content-Type" not in answer["headers"], answer


def test_a_blob_request_has_a_content_length(tmp_path: Path) -> None:
    from support.conformance.triggers import Out, blob_input, message_input

    entry = _entry(tmp_path, RAW_REQUEST)
    body = b'{"data": [1, 2]}'
    output, error = Out(), Out()
    entry.handle_blob(blob_input(Req("sized", body=body)), output, error, Out())
    message = Out()
    entry.handle_message(message_input(Req("sized", body=body)), message, Out())
    assert (json.loads(output.get())["length"], json.loads(message.get())["length"]) == (len(body), len(body))


def test_the_local_host_runs_one_call_at_a_time_when_the_setting_says_so(example, serve) -> None:  # noqa: ANN001
    repo = example("diabetes-http")
    (repo / "score.py").write_text("import time\n\n\ndef init():\n    pass\n\n\ndef run(data):\n"
                                   "    time.sleep(0.4)\n    return {}\n")
    (repo / "modelfunc.yaml").write_text("trigger:\n  type: http\n  auth_level: anonymous\n")
    host = serve(repo, extra=("--setting", "PYTHON_THREADPOOL_THREAD_COUNT=1"))

    def call(_: int) -> int:
        return httpx.post(f"{host.url}/api/score", content=b"{}", timeout=30).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(call, range(3))) == [200, 200, 200]
    assert time.monotonic() - started >= 1.2  # 3 × 0.4 s, one after the other


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_generated_block(DOC, START, END, as_markdown())
    else:
        print(__doc__)
