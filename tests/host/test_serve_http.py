"""HTTP trigger through the real `modelfunc serve` (uvicorn) with the four AML entry-script styles, run
unchanged on the real inference-schema and azureml-contrib-services packages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from support.cases.serve_http import (
    BAD_BODIES,
)
from support.core import EXAMPLES, FIXTURES, copy_example, hosts_side_by_side

# The examples' own entry scripts are the plain and the inference-schema styles.
STYLES = {"plain": EXAMPLES / "diabetes-blob" / "score.py", "schema": EXAMPLES / "diabetes-http" / "score.py"}
SAMPLE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
EXPECTED = [661.6371, 362.4341]
ENV = "dependencies:\n  - python=3.11\n  - pip:\n      - numpy\n      - inference-schema[numpy-support]\n" \
      "      - azureml-contrib-services\n"


def style_repo(example, style: str, auth_level: str = "anonymous") -> Path:
    repo = example("diabetes-http")
    shutil.copyfile(STYLES.get(style, FIXTURES / "styles" / f"{style}.py"), repo / "score.py")
    (repo / "environment.yml").write_text(ENV)
    (repo / "modelfunc.yaml").write_text(f"trigger:\n  type: http\n  auth_level: {auth_level}\n  route: score\n")
    return repo


def post(url: str, body, headers: dict | None = None) -> httpx.Response:  # noqa: ANN001
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(f"{url}/api/score", content=content,
                      headers={"content-type": "application/json", **(headers or {})}, timeout=30)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):  # noqa: ANN001, ANN201
    """One host per style for the whole module (start-up is the slow part), the four started side by side."""
    tmp = tmp_path_factory.mktemp("styles")
    styles = ("plain", "schema", "rawhttp", "headers")
    repos = {style: style_repo(lambda name: copy_example(name, tmp), style) for style in styles}
    with hosts_side_by_side(tmp, repos) as started:
        yield started


@pytest.mark.parametrize("style", ["plain", "schema", "rawhttp"])
def test_style_scores_the_sample(hosts, style: str) -> None:
    resp = post(hosts[style].url, SAMPLE)
    assert resp.status_code == 200, resp.text
    assert resp.json() == EXPECTED
    assert resp.headers["content-type"].startswith("application/json")
    if style == "rawhttp":
        assert resp.headers["x-model"] == "diabetes"  # the AMLResponse's own header came through
    else:
        assert float(resp.headers["x-ms-run-fn-exec-ms"]) >= 0


def test_request_headers_parameter(hosts) -> None:
    resp = post(hosts["headers"].url, SAMPLE, {"x-request-id": "req-42"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"prediction": EXPECTED, "request_id": "req-42"}


def test_rawhttp_gets_method_and_query(hosts) -> None:
    resp = httpx.get(f"{hosts['rawhttp'].url}/api/score", params={"echo": "hi"}, timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"ready": True, "echo": "hi"}


def test_get_passes_query_as_json_to_plain_run(hosts) -> None:
    # azmlinfsrv's contract: GET parameters become the JSON string run() receives
    resp = httpx.get(f"{hosts['plain'].url}/api/score", params={"data": json.dumps(SAMPLE["data"])}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json() == EXPECTED


@pytest.mark.parametrize(("style", "body", "ctype", "status", "message"), [c[1:] for c in BAD_BODIES],
                         ids=[c[0] for c in BAD_BODIES])
def test_bad_request_bodies_get_an_answer_with_a_message(hosts, style, body, ctype, status, message) -> None:
    resp = httpx.post(f"{hosts[style].url}/api/score", content=body, headers={"content-type": ctype}, timeout=10)
    assert resp.status_code == status, resp.text
    assert resp.json()["message"].startswith(message), resp.json()["message"]


def test_exception_in_run_is_500_with_error_id_and_no_traceback(hosts) -> None:
    host = hosts["plain"]
    resp = post(host.url, {"data": [[1, 2, 3]]})  # wrong width: numpy raises inside run()
    assert resp.status_code == 500
    body = resp.json()
    error_id = body["error_id"]
    assert error_id in body["message"] and "ValueError" in body["message"]
    assert "Traceback" not in resp.text and "score.py" not in resp.text
    assert resp.headers["x-ms-run-function-failed"] == "True"
    log = host.output()
    assert f"[{error_id}] run() raised" in log
    assert "Traceback" in log.split(error_id, 1)[1]


def test_admin_api_lists_functions_and_readiness(hosts) -> None:
    url = hosts["schema"].url
    assert hosts["schema"].status()["state"] == "Running"
    fn, swagger = httpx.get(f"{url}/admin/functions", timeout=5).json()
    assert fn["name"] == "score"
    assert fn["trigger"] == {"type": "httpTrigger", "methods": ["GET", "POST"], "authLevel": "ANONYMOUS",
                             "route": "score"}
    assert fn["invoke_url"] == f"{url}/api/score"
    # and the app's OpenAPI document (docs/openapi.md; tests/host/test_openapi.py)
    assert swagger["name"] == "swagger"
    assert swagger["trigger"] == {"type": "httpTrigger", "methods": ["GET"], "authLevel": "ANONYMOUS",
                                  "route": "swagger.json"}
    assert swagger["invoke_url"] == f"{url}/api/swagger.json"
    # A method the function does not list: the Functions host's routing answers an empty 404 (not 405).
    put = httpx.put(f"{url}/api/score", content=b"{}", timeout=5)
    assert (put.status_code, put.content) == (404, b"")


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("def init():\n    raise RuntimeError('model file is corrupt')\n\ndef run(data):\n    return data\n",
         "init() of score.py failed: RuntimeError: model file is corrupt"),
        ("import not_a_real_module_xyz\n\ndef init():\n    pass\n\ndef run(data):\n    return data\n",
         "ModuleNotFoundError: No module named 'not_a_real_module_xyz'"),
    ],
    ids=["init-raises", "import-fails"],
)
def test_startup_failures_stop_the_host_with_a_clear_error(example, serve, script: str, message: str) -> None:
    repo = example("diabetes-http")
    (repo / "score.py").write_text(script)
    host = serve(repo, expect_ready=False)
    assert host.process.wait(timeout=60) != 0
    out = host.output()
    assert message in out
    assert "error:" in out


def test_runtime_rejects_rawhttp_plus_schema(example, serve) -> None:
    repo = style_repo(example, "both_decorators")
    host = serve(repo, expect_ready=False)
    assert host.process.wait(timeout=60) != 0
    assert "cannot be decorated with both @rawhttp and @input_schema" in host.output()


@pytest.mark.serial  # a 25 ms bound on the median reply: not beside other tests' load
def test_keep_alive_replies_are_not_delayed(hosts) -> None:
    """Regression: without TCP_NODELAY each keep-alive reply waited ~40 ms for a delayed ACK."""
    import time

    with httpx.Client(base_url=hosts["plain"].url, timeout=10) as client:
        latencies = []
        for _ in range(21):
            started = time.perf_counter()
            assert client.post("/api/score", content=json.dumps(SAMPLE)).status_code == 200
            latencies.append(time.perf_counter() - started)
    assert sorted(latencies)[10] < 0.025, f"median {sorted(latencies)[10] * 1000:.1f} ms"


def test_every_answer_names_its_deployment_and_the_test_refuses_another(example, serve) -> None:  # noqa: ANN001
    """The deploy names the deployment (MODELFUNC_DEPLOYMENT_ID, the image digest) once the slot runs its image;
    every HTTP answer carries it, so the test of a new image never accepts the previous image's answer."""
    from modelfunc.config import load_project
    from modelfunc.roundtrip import round_trip

    repo = style_repo(example, "schema")
    mine, other = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    host = serve(repo, extra=("--setting", f"MODELFUNC_DEPLOYMENT_ID={mine}"))
    assert post(host.url, SAMPLE).headers["x-modelfunc-deployment"] == mine
    project = load_project(repo)
    ok = round_trip(project, host_url=host.url, deployment=mine, timeout=10)
    assert ok.passed and ok.deployment == mine, ok.render()
    refused = round_trip(project, host_url=host.url, deployment=other, timeout=1)
    assert not refused.passed and f"came from {mine}, not from deployment {other}" in refused.error


MODULES_SCORE = """\
import json
import sys


def init():
    pass


def run(data):
    return {name: name in sys.modules for name in json.loads(data)["modules"]}
"""
HEAVY = ["azure.storage.blob", "modelfunc.storage", "modelfunc.localhost.blobs"]  # what only a blob trigger needs


def test_an_http_apps_host_does_not_import_the_storage_sdk(example, serve) -> None:  # noqa: ANN001
    """Only a host with a blob trigger imports the blob listener and the storage SDK (about 0.15 s of CPU at every
    start); the app's own process says what it has imported, the host's own modules among them."""
    repo = example("diabetes-http")
    (repo / "score.py").write_text(MODULES_SCORE)
    host = serve(repo)
    resp = post(host.url, {"modules": [*HEAVY, "uvicorn", "modelfunc.localhost.server", "azure.functions"]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {**dict.fromkeys(HEAVY, False), "uvicorn": True, "modelfunc.localhost.server": True,
                           "azure.functions": True}


def test_serves_own_process_checks_the_settings_without_importing_the_host() -> None:
    """`modelfunc serve` reads local.settings.json and chooses the master key before it starts the host in the app's
    Python (localhost/appsettings.py): its own process imports none of the host (half a second of CPU before). Nor
    does `modelfunc up` import the storage SDK before it knows the trigger needs it (an HTTP round trip does not)."""
    import subprocess
    import sys

    code = ("import sys, modelfunc.cli, modelfunc.appenv, modelfunc.appgen, modelfunc.azurite, modelfunc.action.io, "
            "modelfunc.up, modelfunc.roundtrip, modelfunc.localhost.appsettings as s; "
            "assert s.read_local_settings and s.choose_master_key; "
            "print(sorted(m for m in ('uvicorn', 'starlette', 'azure.functions', 'azure.storage.blob', "
            "'modelfunc.localhost.server', 'modelfunc.localhost.loader') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
