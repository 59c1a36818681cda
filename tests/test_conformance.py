"""Conformance with Azure ML's own scoring server: every entry script in tests/conformance/scripts/ runs under
azmlinfsrv (azureml-inference-server-http, the oracle) and under `modelfunc serve`, side by side, and both get the
same requests (tests/conformance/catalogue.py). Status, body, content type, the script's own headers and
x-ms-run-function-failed are compared; every difference must be a row of docs/contract.md's table of deliberate
differences (tests/conformance/differences.py), and every row must still explain a difference.

After changing a row, regenerate the table: ``.venv/bin/python tests/test_conformance.py --write``.
The oracle's venv comes from ``make .venv-aml/.installed`` (part of ``make setup``).
"""

from __future__ import annotations

import collections
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from conformance.catalogue import SCRIPTS, requests_for  # noqa: E402
from conformance.compare import Diff, compare_run  # noqa: E402
from conformance.differences import DIFFERENCES, as_markdown, explain  # noqa: E402
from conformance.harness import Run, oracle_python, run_all  # noqa: E402

ROOT = TESTS.parent
DOC = ROOT / "docs" / "contract.md"
START, END = "<!-- deliberate-differences:start -->", "<!-- deliberate-differences:end -->"
ORACLE = oracle_python()

needs_oracle = pytest.mark.skipif(
    ORACLE is None, reason="azmlinfsrv is not installed: `make .venv-aml/.installed` creates its venv")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Run]:
    started = time.monotonic()
    result = run_all(SCRIPTS, tmp_path_factory.mktemp("conformance"), ORACLE, parallel=2)
    seconds = time.monotonic() - started
    n_requests = sum(len(r.answers) for r in result.values())
    per_script = [len(requests_for(s)) for s in SCRIPTS if s.starts]
    refused = sum(1 for s in SCRIPTS if not s.starts)
    line = (f"conformance with azmlinfsrv {run_all.oracle_version}: {len(SCRIPTS)} entry scripts × "
            f"{min(per_script)}-{max(per_script)} requests = {n_requests} request pairs ({refused} scripts refuse to "
            f"start on both servers) in {seconds:.0f} s")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even with output captured (-q, CI)
            reporter.write_line("")
            reporter.write_line(line)
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "conformance.txt").write_text(line + "\n", encoding="utf-8")
    return result


def _explained(run: Run) -> tuple[list[Diff], collections.Counter[str]]:
    """The differences no row explains, and how many each row explains."""
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
        "add a row to tests/conformance/differences.py with its reason):\n" + "\n".join(f"  {d}" for d in unexplained))


@needs_oracle
def test_every_deliberate_difference_still_differs(runs: dict[str, Run]) -> None:
    assert len(SCRIPTS) >= 30
    rows: collections.Counter[str] = collections.Counter()
    for run in runs.values():
        rows.update(_explained(run)[1])
    stale = [d.id for d in DIFFERENCES if rows[d.id] == 0]
    assert not stale, f"rows of docs/contract.md that no longer differ (remove them): {stale}; in use: {dict(rows)}"


def test_the_document_lists_the_rows() -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, f"{DOC} has no {START} … {END} block"
    assert match.group(1) == as_markdown(), (
        "docs/contract.md's table differs from tests/conformance/differences.py: "
        "run `.venv/bin/python tests/test_conformance.py --write`")


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


def write_document() -> None:
    text = DOC.read_text(encoding="utf-8")
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: f"{START}\n{as_markdown()}\n{END}", text,
                 flags=re.S)
    DOC.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_document()
        print(f"wrote {DOC.relative_to(ROOT)}")
    else:
        print(__doc__)
