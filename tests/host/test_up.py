"""`modelfunc up`: the README's main job (package → Azurite → local host → sample test), per trigger, plus
the Service Bus function invoked through the local host's admin API."""

from __future__ import annotations

import json

import httpx
import pytest
from support.core import run_modelfunc


@pytest.mark.parametrize("name", ["diabetes-blob", "diabetes-http", "diabetes-servicebus"])
def test_up_runs_the_whole_pipeline_green(example, tmp_path, name: str) -> None:
    repo = example(name)
    report = tmp_path / "report.json"
    result = run_modelfunc("up", str(repo), "--report", str(report), "--timeout", "60", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS: ")
    for step in ("==> package", "==> start the local host", "==> test the sample"):
        assert step in result.stderr
    assert ("==> start Azurite" in result.stderr) == (name == "diabetes-blob")
    data = json.loads(report.read_text())
    assert data["passed"] is True
    assert data["actual"] == [661.6371, 362.4341]
    assert (repo / "build" / "app" / "function_app.py").is_file()


def test_up_fails_when_the_model_is_wrong(example) -> None:
    repo = example("diabetes-http")
    (repo / "model" / "model.json").write_text('{"coef": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "intercept": 1.0}\n')
    result = run_modelfunc("up", str(repo), "--timeout", "60", timeout=180)
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL: http round trip")
    assert "[0]: 661.6371 vs 1.0" in result.stdout


def test_up_stops_at_a_config_error_before_starting_anything(example) -> None:
    repo = example("diabetes-blob")
    (repo / "modelfunc.yaml").write_text("trigger:\n  type: blob\n  input_path: input/{name}.json\n")
    result = run_modelfunc("up", str(repo))
    assert result.returncode == 2
    assert "trigger.input_path: 'input/{name}.json' must contain {blobname}" in result.stderr
    assert "==> start" not in result.stderr
    assert not (repo / "build").exists()


def test_service_bus_function_invoked_through_admin_api(example, serve) -> None:
    repo = example("diabetes-servicebus")
    host = serve(repo)
    sample = (repo / "samples" / "input.json").read_text()
    resp = httpx.post(f"{host.url}/admin/functions/score_message", json={"input": sample}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["outputs"] == {"scoring-results": "[661.6371, 362.4341]"}
    # A message run() cannot score is not answered on the output queue: it raises (→ dead-letter).
    bad = httpx.post(f"{host.url}/admin/functions/score_message", json={"input": '{"data": [[1]]}'}, timeout=30)
    assert bad.status_code == 500
    assert bad.json()["dead_lettered"] is True and "status 500" in bad.json()["error"]
    assert "outputs" not in bad.json()
    # Bad invocations are 4xx with a reason.
    assert httpx.post(f"{host.url}/admin/functions/nope", json={"input": ""}, timeout=5).status_code == 404
    assert httpx.post(f"{host.url}/admin/functions/score_message", content=b"not json",
                      timeout=5).status_code == 400
    # blob-test for a Service Bus repo goes through the same admin API.
    result = run_modelfunc("blob-test", str(repo), "--host-url", host.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS: service-bus-queue round trip")


def test_a_binary_answer_to_a_message_comes_back_from_the_admin_api_in_base64(example, serve) -> None:
    """run() may answer bytes that are not UTF-8 (an image): the output message carries them as they are, and the
    admin API, whose answer is JSON, gives them in base64."""
    import base64

    repo = example("diabetes-servicebus")
    (repo / "score.py").write_text(
        "from azureml.contrib.services.aml_request import rawhttp\n"
        "from azureml.contrib.services.aml_response import AMLResponse\n\n\n"
        "def init():\n    pass\n\n\n@rawhttp\ndef run(request):\n"
        "    return AMLResponse(b'\\x89PNG' + bytes(range(256)), 200)\n")
    # score.py imports azureml.contrib.services: the app's requirements say so (its environment is its own)
    (repo / "environment.yml").write_text("dependencies:\n  - python=3.11\n  - pip:\n"
                                          "      - azureml-contrib-services\n")
    host = serve(repo)
    resp = httpx.post(f"{host.url}/admin/functions/score_message", json={"input": "{}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    (message,) = resp.json()["outputs"].values()
    assert base64.b64decode(message["base64"]) == b"\x89PNG" + bytes(range(256))
