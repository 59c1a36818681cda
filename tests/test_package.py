"""`modelfunc package`: the rendered app indexes (with azure-functions itself) to exactly the configured
bindings, and rendering is deterministic and atomic."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import run_modelfunc

INDEX = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import importlib.util
spec = importlib.util.spec_from_file_location("function_app", sys.argv[1] + "/function_app.py")
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
out = {}
for f in mod.app.get_functions():
    out[f.get_function_name()] = sorted((json.loads(b) for b in f.get_raw_bindings()), key=lambda b: b["name"])
mod.entry.wait_ready(30)
print(json.dumps(out))
"""


def index(app_dir: Path) -> dict:
    """Index the app the way the Functions Python worker does, in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", INDEX, str(app_dir)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


EXPECTED = {
    "diabetes-http": {
        "score": [
            {"direction": "OUT", "type": "http", "name": "$return"},
            {"direction": "IN", "type": "httpTrigger", "name": "req", "methods": ["GET", "POST"],
             "authLevel": "FUNCTION", "route": "score"},
        ]
    },
    "diabetes-blob": {
        "score_blob": [
            {"direction": "IN", "type": "blobTrigger", "name": "blob", "path": "input/{blobname}.json",
             "connection": "TriggerConnectionString", "source": "LogsAndContainerScan"},
            {"direction": "OUT", "type": "blob", "name": "error", "path": "errors/{blobname}_error.json",
             "connection": "TriggerConnectionString"},
            {"direction": "OUT", "type": "blob", "name": "output", "path": "output/{blobname}_out.json",
             "connection": "TriggerConnectionString"},
            # which deployment answered (issue 11): the runtime stamps every blob answer
            {"direction": "OUT", "type": "blob", "name": "stamp",
             "path": "modelfunc-stamps/output/{blobname}_out.json", "connection": "TriggerConnectionString"},
        ]
    },
    "diabetes-servicebus": {
        "score_message": [
            {"direction": "IN", "type": "serviceBusTrigger", "name": "msg", "connection": "ServiceBusConnection",
             "queueName": "scoring-requests"},
            {"direction": "OUT", "type": "serviceBus", "name": "output", "connection": "ServiceBusConnection",
             "queueName": "scoring-results"},
            # which deployment answered: a queue answer has no properties to carry it, so a stamp blob per message
            {"direction": "OUT", "type": "blob", "name": "stamp", "path": "modelfunc-stamps/messages/{MessageId}",
             "connection": "AzureWebJobsStorage"},
        ]
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bindings_are_exactly_the_configured_ones(example, tmp_path: Path, name: str) -> None:
    repo = example(name)
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    got = index(tmp_path / "out" / "app")
    assert list(got) == list(EXPECTED[name])
    for function, bindings in EXPECTED[name].items():
        assert len(got[function]) == len(bindings)
        for want, have in zip(bindings, got[function], strict=True):
            assert have == want


def test_blob_options_reach_the_bindings(example, tmp_path: Path) -> None:
    repo = example("diabetes-blob")
    (repo / "modelfunc.yaml").write_text(
        "trigger:\n  type: blob\n  input_path: requests/{blobname}.csv\n  output_path: scored/{blobname}.json\n"
        "  error_path: failed/{blobname}.json\n  connection: ScoringStorage\n  source: EventGrid\n"
        "samples:\n  tolerance: 0.001\n")
    assert run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "o")).returncode == 0
    bindings = {b["name"]: b for b in index(tmp_path / "o" / "app")["score_blob"]}
    assert bindings["blob"]["path"] == "requests/{blobname}.csv"
    assert bindings["blob"]["source"] == "EventGrid"
    assert bindings["output"]["path"] == "scored/{blobname}.json"
    assert bindings["error"]["path"] == "failed/{blobname}.json"
    assert {b["connection"] for b in bindings.values()} == {"ScoringStorage"}


def test_http_options_reach_the_binding(example, tmp_path: Path) -> None:
    repo = example("diabetes-http")
    (repo / "modelfunc.yaml").write_text(
        "trigger:\n  type: http\n  auth_level: anonymous\n  route: models/diabetes/score\n  methods: [POST]\n")
    assert run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "o")).returncode == 0
    (trigger,) = [b for b in index(tmp_path / "o" / "app")["score"] if b["type"] == "httpTrigger"]
    assert trigger["authLevel"] == "ANONYMOUS"
    assert trigger["route"] == "models/diabetes/score"
    assert trigger["methods"] == ["POST"]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rendering_twice_gives_identical_bytes(example, tmp_path: Path, name: str) -> None:
    repo = example(name)
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_modelfunc("package", str(repo), "--no-build", "--out", str(first)).returncode == 0
    assert run_modelfunc("package", str(repo), "--no-build", "--out", str(second)).returncode == 0
    a, b = _tree(first), _tree(second)
    assert a == b
    # and rendering over an existing output replaces it with the same bytes and mtimes
    mtimes = {p: (first / p).stat().st_mtime for p in a}
    assert run_modelfunc("package", str(repo), "--no-build", "--out", str(first)).returncode == 0
    assert _tree(first) == a
    assert {p: (first / p).stat().st_mtime for p in a} == mtimes


def test_app_contents(example, tmp_path: Path) -> None:
    repo = example("diabetes-http")
    (repo / "helpers.py").write_text("SCALE = 1.0\n")
    (repo / "score.py").write_text("import helpers\n" + (repo / "score.py").read_text())
    (repo / "unrelated.py").write_text("x = 1\n")
    out = tmp_path / "o"
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(out),
                           "--base-image", "example.invalid/py:3.11")
    assert result.returncode == 0, result.stderr
    files = set(_tree(out))
    assert files == {
        ".dockerignore", ".modelfunc-build", "Dockerfile", "app/.funcignore", "app/function_app.py",
        "app/host.json", "app/local.settings.json", "app/model/model.json", "app/modelfunc_runtime.py",
        "app/requirements.txt", "app/score.py", "app/helpers.py",
        "layers/dependencies.tar", "layers/model.tar", "layers/code.tar",
    }
    requirements = (out / "app/requirements.txt").read_text().splitlines()
    assert requirements[1:] == ["azure-functions", "numpy>=1.26", "inference-schema[numpy-support]>=1.8"]
    host = json.loads((out / "app/host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    assert host["extensions"] == {"http": {"routePrefix": "api"}}
    dockerfile = (out / "Dockerfile").read_text()
    assert "\nFROM example.invalid/py:3.11\n" in dockerfile
    assert "AzureWebJobsScriptRoot=/home/site/wwwroot" in dockerfile
    # dependencies before the model, the model before the code (cache-friendly layer order)
    assert dockerfile.index("ADD layers/dependencies.tar") < dockerfile.index("ADD layers/model.tar") \
        < dockerfile.index("ADD layers/code.tar")
    with tarfile.open(out / "layers/code.tar") as tar:
        code = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert code == [f"home/site/wwwroot/{f}" for f in (".funcignore", "function_app.py", "helpers.py", "host.json",
                                                        "modelfunc_runtime.py", "requirements.txt", "score.py")]
    with tarfile.open(out / "layers/model.tar") as tar:
        assert [m.name for m in tar.getmembers() if m.isfile()] == ["home/site/wwwroot/model/model.json"]
    with tarfile.open(out / "layers/dependencies.tar") as tar:
        names = tar.getnames()
    assert "home/site/wwwroot/.python_packages/lib/site-packages/numpy/__init__.py" in names
    assert not any("/bin/" in n for n in names)
    runtime = Path(__file__).resolve().parents[1] / "generator/modelfunc/runtime/modelfunc_runtime.py"
    assert (out / "app/modelfunc_runtime.py").read_bytes() == runtime.read_bytes()


def test_default_base_image_follows_python_version(example, tmp_path: Path) -> None:
    repo = example("diabetes-servicebus")
    (repo / "environment.yml").write_text("dependencies:\n  - python=3.12\n  - numpy\n")
    (repo / "modelfunc.yaml").write_text((repo / "modelfunc.yaml").read_text() + "python_version: '3.12'\n")
    assert run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "o")).returncode == 0
    assert "FROM mcr.microsoft.com/azure-functions/python:4-python3.12\n" in (tmp_path / "o/Dockerfile").read_text()


def test_conda_only_packages_are_reported_not_installed(example, tmp_path: Path) -> None:
    repo = example("diabetes-servicebus")
    (repo / "environment.yml").write_text("dependencies:\n  - numpy\n  - mkl\n  - pip\n")
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert "left out conda-only packages (nothing for pip to install): mkl\n" in result.stderr
    assert (tmp_path / "o/app/requirements.txt").read_text().splitlines()[1:] == ["azure-functions", "numpy"]
