"""`modelfunc package`: the rendered app indexes (with azure-functions itself) to exactly the configured
bindings, and rendering is deterministic and atomic."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest
from support.core import ROOT, run_modelfunc

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
        ],
        # the app's OpenAPI document (docs/openapi.md), with the scoring function's auth level
        "swagger": [
            {"direction": "OUT", "type": "http", "name": "$return"},
            {"direction": "IN", "type": "httpTrigger", "name": "req", "methods": ["GET"],
             "authLevel": "FUNCTION", "route": "swagger.json"},
        ],
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
    functions = index(tmp_path / "o" / "app")
    (trigger,) = [b for b in functions["score"] if b["type"] == "httpTrigger"]
    assert trigger["authLevel"] == "ANONYMOUS"
    assert trigger["route"] == "models/diabetes/score"
    assert trigger["methods"] == ["POST"]
    (swagger,) = [b for b in functions["swagger"] if b["type"] == "httpTrigger"]
    assert (swagger["authLevel"], swagger["route"], swagger["methods"]) == ("ANONYMOUS", "swagger.json", ["GET"])


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
    (repo / "unrelated.py").write_text("x = 1\n")  # not imported, but beside score.py: Azure ML ships it too
    out = tmp_path / "o"
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(out),
                           "--base-image", "example.invalid/py:3.11")
    assert result.returncode == 0, result.stderr
    files = set(_tree(out))
    assert files == {
        ".dockerignore", ".modelfunc-build", "Dockerfile", "app/.funcignore", "app/function_app.py",
        "app/host.json", "app/local.settings.json", "app/model/model.json", "app/modelfunc_runtime.py",
        "app/modelfunc_azureml_compat.py", "app/modelfunc_openapi.py", "app/modelfunc_openapi.json",
        "app/requirements.txt", "app/requirements.lock", "app/score.py", "app/helpers.py", "app/unrelated.py",
        "app/samples/input.json", "app/samples/expected.json",
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
    assert code == [f"home/site/wwwroot/{f}" for f in (
        ".funcignore", "function_app.py", "helpers.py", "host.json", "modelfunc_azureml_compat.py",
        "modelfunc_openapi.json", "modelfunc_openapi.py", "modelfunc_runtime.py", "requirements.lock",
        "requirements.txt", "samples/expected.json", "samples/input.json", "score.py", "unrelated.py")]
    with tarfile.open(out / "layers/model.tar") as tar:
        assert [m.name for m in tar.getmembers() if m.isfile()] == ["home/site/wwwroot/model/model.json"]
    with tarfile.open(out / "layers/dependencies.tar") as tar:
        names = tar.getnames()
    assert "home/site/wwwroot/.python_packages/lib/site-packages/numpy/__init__.py" in names
    assert not any("/bin/" in n for n in names)
    runtime = ROOT / "generator/modelfunc/runtime"
    for name in ("modelfunc_runtime.py", "modelfunc_azureml_compat.py", "modelfunc_openapi.py"):
        assert (out / "app" / name).read_bytes() == (runtime / name).read_bytes()


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


# ------------------------------------------------------------------ the entry script's whole source directory

APP_FILES = {"function_app.py", "host.json", "requirements.txt", "requirements.lock", "local.settings.json",
             "modelfunc_runtime.py",
             "modelfunc_azureml_compat.py", ".funcignore", "model/model.json", "score.py"}
# What each example's app holds beyond the files above: the rest of its source directory, as Azure ML ships it (and
# an HTTP app's OpenAPI document builder and description, docs/openapi.md).
OPENAPI_FILES = {"modelfunc_openapi.py", "modelfunc_openapi.json"}
EXAMPLE_SOURCE = {
    "diabetes-http": {"samples/input.json", "samples/expected.json"},
    "diabetes-blob": {"samples/input.json", "samples/expected.json", "train.py"},
    "diabetes-servicebus": {"samples/input.json", "samples/expected.json"},
    # The Azure docs' Redis sample, fixed: its README (the docs' score.py, before and after) ships too, as Azure ML
    # ships what sits beside score.py.
    "digits-redis-http": {"samples/input.json", "samples/expected.json", "train.py", "README.md"},
}
EXAMPLE_MODEL = {"digits-redis-http": {"model/sklearn_mnist_model.pkl"}}  # the others' model: model/model.json


def package_json(repo: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out_json = repo.parent / f"{repo.name}-package.json"
    result = run_modelfunc("package", str(repo), "--no-build", "--json", str(out_json), *args)
    assert result.returncode == 0, result.stderr
    return result, json.loads(out_json.read_text())


def app_files(app: Path) -> set[str]:
    return set(_tree(app))


def left_out(summary: dict) -> dict[str, str]:
    return {item["path"]: item["reason"] for item in summary["source"]["left_out"]}


def test_examples_ship_their_source_directory_and_nothing_else() -> None:
    assert sorted(EXAMPLE_SOURCE) == sorted(p.name for p in (ROOT / "examples")
                                            .iterdir() if (p / "modelfunc.yaml").is_file())


@pytest.mark.parametrize("name", sorted(EXAMPLE_SOURCE))
def test_example_app_is_the_old_app_plus_its_source_files(example, tmp_path: Path, name: str) -> None:
    repo = example(name)
    result, summary = package_json(repo, "--out", str(tmp_path / "o"))
    model = EXAMPLE_MODEL.get(name, {"model/model.json"})
    assert app_files(tmp_path / "o" / "app") == (APP_FILES - {"model/model.json"}) | model | EXAMPLE_SOURCE[name] | (
        OPENAPI_FILES if name.endswith("-http") else set())
    assert left_out(summary) == {"environment.yml": "modelfunc input", "modelfunc.yaml": "modelfunc input"}
    assert summary["source"]["dir"] == str(repo.resolve())
    assert sorted(summary["source"]["shipped"]) == sorted({"score.py"} | EXAMPLE_SOURCE[name])
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("source: ")]
    assert f"{len(EXAMPLE_SOURCE[name]) + 1} files" in line
    sizes = sorted(((repo / n).stat().st_size, n) for n in ("modelfunc.yaml", "environment.yml"))[::-1]
    assert line.endswith("; left out 2 (modelfunc input: 2): " + ", ".join(f"{n} {b} B" for b, n in sizes)), line


SOURCE_SCORE = '''\
"""Reads what sits beside it the ways Azure ML entry scripts do; no local module here is a plain import."""
import importlib
import importlib.util
import json
import os
from pathlib import Path

from helpers.scaling import scale  # a folder without __init__.py (a namespace package)

HERE = Path(__file__).resolve().parent
model = offsets = post = addon = None


def _load(path):
    spec = importlib.util.spec_from_file_location("addon", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def init():
    global model, offsets, post, addon
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")) as f:
        model = json.load(f)
    with open(os.path.join(os.path.dirname(__file__), "data", "offsets.json")) as f:  # a data file, via __file__
        offsets = json.load(f)
    post = importlib.import_module((HERE / "plugin.txt").read_text().strip())  # a module named at run time
    addon = _load(HERE / "addons" / "extra.py")  # a module loaded from its path


def run(raw_data):
    rows = [sum(c * x for c, x in zip(model["coef"], row)) + model["intercept"]
            for row in json.loads(raw_data)["data"]]
    return post.finish([scale(r) + offsets["offset"] + addon.BONUS for r in rows])
'''
SOURCE_FILES = {
    "helpers/scaling.py": "def scale(x):\n    return 2 * x\n",
    "data/offsets.json": '{"offset": 1.25}\n',
    "plugin.txt": "postprocess\n",
    "postprocess.py": "def finish(values):\n    return {'answer': [round(v, 4) for v in values]}\n",
    "addons/extra.py": "BONUS = 0.5\n",
}


def source_repo(example) -> Path:  # noqa: ANN001
    repo = example("diabetes-http")
    (repo / "score.py").write_text(SOURCE_SCORE)
    for rel, text in SOURCE_FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    (repo / "modelfunc.yaml").write_text("trigger:\n  type: http\n  auth_level: anonymous\n  route: score\n")
    return repo


def test_files_beside_score_py_are_shipped_and_the_app_answers(example, serve) -> None:  # noqa: ANN001
    """Issue 12 (4): a data file read through __file__, a helper folder without __init__.py, a module named at run
    time and one loaded from its path: all shipped, so the packaged app starts and answers."""
    repo = source_repo(example)
    _, summary = package_json(repo)  # into <repo>/build, which the next render (serve's) must not ship
    assert app_files(repo / "build" / "app") == (APP_FILES | OPENAPI_FILES | set(SOURCE_FILES)
                                                 | EXAMPLE_SOURCE["diabetes-http"])
    host = serve(repo)
    data = json.loads((repo / "samples" / "input.json").read_text())
    resp = httpx.post(f"{host.url}/api/score", json=data, timeout=30)
    assert resp.status_code == 200, resp.text + host.output()
    model = json.loads((repo / "model" / "model.json").read_text())
    want = [round(2 * (sum(c * x for c, x in zip(model["coef"], row, strict=True)) + model["intercept"]) + 1.75, 4)
            for row in data["data"]]
    assert resp.json() == {"answer": want}
    assert not (repo / "build" / "app" / "build").exists()
    assert "build/" not in left_out(summary)  # nothing was built before the first package


def test_amlignore_wins_over_gitignore(example, tmp_path: Path) -> None:
    repo = example("diabetes-http")
    for rel, text in {"notes/draft.md": "draft\n", "local.env": "TOKEN=x\n", "data/big.csv": "1,2\n" * 1000,
                      "data/keep.csv": "3,4\n", "lookup.csv": "5,6\n"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    (repo / ".gitignore").write_text("# data stays out of git\n*.csv\n!keep.csv\n")
    (repo / ".amlignore").write_text("notes/\n*.env\n")

    result, summary = package_json(repo, "--out", str(tmp_path / "a"))
    files = app_files(tmp_path / "a" / "app")
    assert {"data/big.csv", "data/keep.csv", "lookup.csv"} <= files  # .gitignore is not read beside a .amlignore
    assert not {"notes/draft.md", "local.env", ".amlignore", ".gitignore"} & files
    assert summary["source"]["ignore_file"] == ".amlignore"
    assert left_out(summary) == {"notes/": ".amlignore", "local.env": ".amlignore", ".amlignore": "tooling",
                                 ".gitignore": "tooling", "environment.yml": "modelfunc input",
                                 "modelfunc.yaml": "modelfunc input"}
    assert "left out 6 (.amlignore: 2, modelfunc input: 2, tooling: 2): " in result.stderr

    (repo / ".amlignore").unlink()
    result, summary = package_json(repo, "--out", str(tmp_path / "g"))
    files = app_files(tmp_path / "g" / "app")
    assert {"notes/draft.md", "local.env", "data/keep.csv"} <= files
    assert not {"data/big.csv", "lookup.csv"} & files
    assert summary["source"]["ignore_file"] == ".gitignore"
    big = next(i for i in summary["source"]["left_out"] if i["path"] == "data/big.csv")
    assert big == {"path": "data/big.csv", "reason": ".gitignore", "bytes": 4000}
    # the largest left-out file is named first in the one-line summary
    assert "left out 5 (.gitignore: 2, modelfunc input: 2, tooling: 1): data/big.csv 3.9 KiB, " in result.stderr


def test_build_output_model_dir_and_tooling_are_not_shipped(example, tmp_path: Path) -> None:
    repo = example("diabetes-blob")
    for rel in (".git/HEAD", ".github/workflows/ci.yml", ".venv/pyvenv.cfg", ".venv/lib/site.py", "env311/pyvenv.cfg",
                "env311/lib/x.py", "__pycache__/score.cpython-311.pyc", "node_modules/x/index.js", "helpers/util.pyc"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x\n")
    want = APP_FILES | EXAMPLE_SOURCE["diabetes-blob"]
    package_json(repo)  # into <repo>/build
    _, summary = package_json(repo)  # again: the build output beside score.py is not shipped into itself
    assert app_files(repo / "build" / "app") == want
    _, summary = package_json(repo, "--out", str(repo / "other-out"))  # the earlier build/ is known by its marker
    assert app_files(repo / "other-out" / "app") == want
    gone = left_out(summary)
    assert gone["build/"] == "build output"
    for rel in (".git/", ".github/", ".venv/", "env311/", "__pycache__/", "node_modules/", "helpers/util.pyc"):
        assert gone[rel] == "tooling", rel
    assert "model/" not in gone  # shipped, as the app's model/, in its own layer
    with tarfile.open(repo / "other-out" / "layers" / "code.tar") as tar:
        assert not [n for n in tar.getnames() if "/model/" in n or "build" in n or "other-out" in n]
    with tarfile.open(repo / "other-out" / "layers" / "model.tar") as tar:
        assert [m.name for m in tar.getmembers() if m.isfile()] == ["home/site/wwwroot/model/model.json"]

    # a model directory deeper in the source directory is shipped once, as the app's model/
    (repo / "assets").mkdir()
    (repo / "model").rename(repo / "assets" / "model")
    (repo / "assets" / "labels.txt").write_text("low\nhigh\n")
    (repo / "modelfunc.yaml").write_text((repo / "modelfunc.yaml").read_text() + "model_dir: assets/model\n")
    package_json(repo, "--out", str(tmp_path / "nested"))
    assert app_files(tmp_path / "nested" / "app") == want | {"assets/labels.txt"}


def test_symlinks_never_lead_out_of_the_source_directory(example, tmp_path: Path) -> None:
    """Issue 13's /etc/shadow, for the source directory: a link out of it is not followed, and the output says so."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "shadow").write_text("root:TOPSECRET-4711:19000:0:99999:7:::\n")
    repo = example("diabetes-http")
    (repo / "data").mkdir()
    (repo / "data" / "table.json").write_text('{"a": 1}\n')
    links = {"creds": secret / "shadow", "outside": secret, "rel-out": Path("../secret/shadow"),
             "dangling": repo / "nowhere", "table-alias.json": Path("data/table.json"), "data-alias": Path("data"),
             "data/loop": Path(".."), "weights": Path("model/model.json")}
    for name, target in links.items():
        (repo / name).symlink_to(target)
    result, summary = package_json(repo, "--out", str(tmp_path / "o"))
    out = tmp_path / "o"
    for path in out.rglob("*"):
        assert path.is_dir() or b"TOPSECRET" not in path.read_bytes(), path
    files = app_files(out / "app")
    assert (out / "app" / "table-alias.json").read_text() == '{"a": 1}\n'  # a link inside: shipped as a copy
    assert {"data/table.json", "data-alias/table.json"} <= files
    assert not {"creds", "rel-out", "dangling", "weights"} & files
    assert not [f for f in files if f.startswith(("outside/", "data/loop/", "data-alias/loop/"))]
    assert not [p for p in (out / "app").rglob("*") if p.is_symlink()]
    gone = left_out(summary)
    assert {k: gone[k] for k in ("creds", "outside/", "rel-out", "dangling")} == dict.fromkeys(
        ("creds", "outside/", "rel-out", "dangling"), "symlink out of the source directory")
    assert gone["data/loop/"] == "symlink loop"
    assert gone["weights"] == "symlink into the model directory"
    assert f"  not followed: creds -> {secret / 'shadow'} (a symlink leading out of " in result.stderr
    assert "  not followed: rel-out -> ../secret/shadow (" in result.stderr


@pytest.mark.parametrize(
    ("rel", "text", "message"),
    [
        ("host.json", "{}", "a file named 'host.json' beside the entry script would be shipped in place of the "
                            "app's own host.json, which modelfunc writes"),
        ("requirements.txt", "numpy\n", "a file named 'requirements.txt' beside the entry script would be shipped "
                                        "in place of the app's own requirements.txt, which modelfunc writes"),
        ("function_app.py", "X = 1\n", "a file named 'function_app.py'"),
        (".funcignore", "*\n", "a file named '.funcignore'"),
    ],
    ids=["host.json", "requirements.txt", "function_app.py", ".funcignore"],
)
def test_a_file_named_like_one_of_the_apps_own_is_an_error(example, tmp_path: Path, rel: str, text: str,
                                                             message: str) -> None:
    repo = example("diabetes-http")
    (repo / rel).write_text(text)
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {repo.resolve() / rel}: {message}"), result.stderr
    assert f"hint: rename it, or leave it out of the app: add the line /{rel} to .amlignore beside score.py" \
        in result.stderr
    assert not (tmp_path / "o").exists()
    # the fix the hint names works
    (repo / ".amlignore").write_text(f"/{rel}\n")
    _, summary = package_json(repo, "--out", str(tmp_path / "o"))
    assert left_out(summary)[rel] == ".amlignore"


def test_a_model_folder_that_is_not_the_model_dir_is_an_error(example, tmp_path: Path) -> None:
    repo = example("diabetes-http")
    (repo / "model").rename(repo / "artifacts")
    (repo / "model").mkdir()
    (repo / "model" / "notes.txt").write_text("old\n")
    (repo / ".gitignore").write_text("build/\n")
    (repo / "modelfunc.yaml").write_text((repo / "modelfunc.yaml").read_text() + "model_dir: artifacts\n")
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"error: {repo.resolve() / 'model'}: a folder named 'model' beside the entry script would be shipped where "
        "the app keeps the model files (model_dir is 'artifacts')"), result.stderr
    assert "add the line /model/ to .gitignore beside score.py" in result.stderr  # the ignore file in effect


def test_requirements_txt_as_the_environment_is_not_a_clash(example, tmp_path: Path) -> None:
    repo = example("diabetes-http")
    (repo / "environment.yml").unlink()
    (repo / "requirements.txt").write_text("numpy>=1.26\ninference-schema[numpy-support]>=1.8\n")
    _, summary = package_json(repo, "--out", str(tmp_path / "o"))
    assert left_out(summary)["requirements.txt"] == "modelfunc input"
    assert "azure-functions" in (tmp_path / "o" / "app" / "requirements.txt").read_text()
