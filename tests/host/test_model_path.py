"""``Model.get_model_path`` inside the app (runtime/modelfunc_azureml_compat.py), as Azure ML v1 entry scripts call it.

* The stand-in's answers for each layout of AZUREML_MODEL_DIR (``<dir>/<file>``, ``<dir>/<name>`` file or folder,
  ``<dir>/<name>/<version>/<one file or folder>``), version selection (the latest when None), and the errors (types
  and messages as azureml-core's) — called directly.
* The import hook, each in a child Python (it changes ``sys.meta_path`` and ``sys.modules``): no ``azureml`` at all;
  ``azureml`` from azureml-contrib-services (this venv: ``azureml/__init__.py`` with ``pkgutil.extend_path`` and
  ``azureml/contrib/`` only) kept beside the stand-in; an azureml-core that does not import (the stand-in takes over,
  with a warning); an azureml-core that imports (its Model looks in AZUREML_MODEL_DIR first).
* End to end: a repo whose score.py calls ``Model.get_model_path`` as the docs' does, packaged (``modelfunc package
  --no-build``) and scored by the app's own runtime self-test (``python -m modelfunc_runtime selftest``), through
  the local host (``modelfunc serve``: the app's own environment, no azureml at all), and inside the image (its
  self-test; skipped without a Docker engine).

Reference check against the real azureml-core: ``test_the_stand_in_answers_as_azureml_core_does`` runs
``Model.get_model_path`` of a real azureml-core (a Python named by MODELFUNC_AZUREML_CORE_PYTHONS, several separated
by ``os.pathsep``; skipped without one) on the same tree, and the stand-in beside it. Last run on this machine:
``pip install azureml-core`` into a throwaway Python 3.11.7 venv gave azureml-core 1.61.0.post4, which imports; the
same tree was read by it as its cache (``$AML_APP_ROOT/azureml-models`` = the tree, working directory = the tree) and,
for the plain layouts, through its working-directory fallback (cache folder absent, working directory = the tree).
Compared, answer by answer (the path, or the exception's type and message):

* ``m`` (versions 1 and 3, one file each), version None → ``m/3/b.pkl``; version 1 → ``m/1/a.pkl``: identical.
* ``tf`` (version 2 holding one folder) → ``tf/2/saved``: identical.
* ``f.pkl`` (a file) → ``f.pkl`` and ``folder`` (a folder of files) → ``folder``: identical to its working-directory
  answers; read as its cache, azureml-core fails on them (``NotADirectoryError``, ``ValueError`` from ``int()``):
  the stand-in's documented difference. With a version, ``f.pkl`` → ``f.pkl`` both ways.
* ``nope``: ``ModelNotFoundException`` (version None) / ``WebserviceException`` (version 2), both ``Model nope not
  found in cache at <dir> or in current working directory <cwd>. For more info, set logging level to DEBUG.``: same
  types, same sentence (the stand-in adds a hint after it).
* ``two`` (version 1 holding two files) → ``WebserviceException`` ``Dir <dir>/two/1 can contain only 1 file or folder.
  Found [...]``: identical (the stand-in lists the names sorted).
* version ``"1"`` → ``WebserviceException`` ``version should be an int``: identical.
* ``m`` version 2 (not there): azureml-core answers ``m`` (the folder of all versions, from the working directory);
  the stand-in raises a ``WebserviceException`` naming the versions there: the other documented difference.

With the same azureml-core imported through the hook, its own ``Model.get_model_path`` gives the stand-in's answers
from AZUREML_MODEL_DIR (working directory elsewhere), raising its own exception types. ``azureml-core==1.0.45``
(what an unpinned azureml-defaults resolved to) installs on Python 3.11 only as wheels (``--only-binary=:all:``; its
ruamel.yaml 0.15 sdist does not build) and then does not import (``No module named
'azure.mgmt.resource.subscriptions'``): the hook gives the stand-in there, checked the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from modelfunc.runtime import modelfunc_azureml_compat as compat
from modelfunc.runtime.modelfunc_azureml_compat import Model, ModelNotFoundException, WebserviceException
from modelfunc.runtime.modelfunc_runtime import SELFTEST_MARK
from support.core import ROOT, run_modelfunc

RUNTIME_DIR = ROOT / "generator" / "modelfunc" / "runtime"
COMPAT = RUNTIME_DIR / "modelfunc_azureml_compat.py"


def tree(root: Path, files: list[str]) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    return root


LAYOUT = ["m/1/a.pkl", "m/3/b.pkl", "tf/2/saved/variables/v.index", "tf/2/saved/saved_model.pb", "f.pkl",
          "folder/a.bin", "folder/b.bin", "two/1/a.pkl", "two/1/b.pkl"]


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """AZUREML_MODEL_DIR holding every layout; the working directory is elsewhere (and empty)."""
    root = tree(tmp_path / "model", LAYOUT)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(root))
    return root


# ------------------------------------------------------------------------------------ the stand-in's answers


def test_a_file_or_folder_named_by_the_model_is_the_model(model_dir: Path) -> None:
    assert Model.get_model_path("f.pkl") == str(model_dir / "f.pkl")  # <dir>/<file>
    assert Model.get_model_path("folder") == str(model_dir / "folder")  # <dir>/<name>, a folder of model files
    assert Model.get_model_path(model_name="f.pkl", version=7) == str(model_dir / "f.pkl")  # one copy: any version


def test_the_versions_layout_gives_the_latest_version_or_the_one_asked_for(model_dir: Path) -> None:
    assert Model.get_model_path("m") == str(model_dir / "m" / "3" / "b.pkl")  # latest: 3, not the last listed
    assert Model.get_model_path("m", version=1) == str(model_dir / "m" / "1" / "a.pkl")
    assert Model.get_model_path(model_name="m", version=3) == str(model_dir / "m" / "3" / "b.pkl")
    assert Model.get_model_path("tf") == str(model_dir / "tf" / "2" / "saved")  # the version's one folder


def test_versions_are_numbers_not_names(model_dir: Path) -> None:
    tree(model_dir, ["n/9/old.pkl", "n/10/new.pkl", "n/.DS_Store"])  # 10 > 9; dot files are not versions
    assert Model.get_model_path("n") == str(model_dir / "n" / "10" / "new.pkl")
    tree(model_dir, ["mixed/1/a.pkl", "mixed/README"])  # not every entry a version folder: a folder model
    assert Model.get_model_path("mixed") == str(model_dir / "mixed")


def test_a_model_in_the_working_directory_is_found_last(model_dir: Path) -> None:
    Path("local.pkl").write_text("x")  # azureml-core's ./<name>
    assert Model.get_model_path("local.pkl") == str(Path.cwd() / "local.pkl")
    (model_dir / "local.pkl").write_text("y")
    assert Model.get_model_path("local.pkl") == str(model_dir / "local.pkl")  # AZUREML_MODEL_DIR first


def test_not_found_is_azureml_cores_exception_and_sentence(model_dir: Path) -> None:
    sentence = (f"Model nope not found in cache at {model_dir} or in current working directory {Path.cwd()}. "
                "For more info, set logging level to DEBUG.")
    with pytest.raises(ModelNotFoundException) as e:
        Model.get_model_path("nope")
    assert e.value.message.startswith(sentence) and "AZUREML_MODEL_DIR" in e.value.message
    assert str(e.value).startswith(f"ModelNotFoundException:\n\tMessage: {sentence}")  # azureml's str() shape
    with pytest.raises(WebserviceException) as e:  # with a version: a WebserviceException, as azureml-core raises
        Model.get_model_path("nope", version=2)
    assert e.value.message.startswith(sentence)
    assert not isinstance(e.value, ModelNotFoundException) and not issubclass(ModelNotFoundException,
                                                                              WebserviceException)


def test_bad_calls_are_azureml_cores_errors(model_dir: Path) -> None:
    for call, message in [
        (lambda: Model.get_model_path("m", version="1"), "version should be an int"),
        (lambda: Model.get_model_path(None), "model_name is None"),
        (lambda: Model.get_model_path("two"), f"Dir {model_dir / 'two' / '1'} can contain only 1 file or folder. "
                                              "Found ['a.pkl', 'b.pkl']"),
        (lambda: Model.get_model_path("m", version=2), f"Model m version 2 not found in cache at {model_dir}: "
                                                       f"{model_dir / 'm'} holds versions 1, 3"),
    ]:
        with pytest.raises(WebserviceException) as e:
            call()
        assert e.value.message == message


def test_without_azureml_model_dir_it_reads_azureml_cores_cache(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    tree(tmp_path / "azureml-models", ["m/4/model.pkl"])
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    monkeypatch.setenv("AML_APP_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert Model.get_model_path("m") == str(tmp_path / "azureml-models" / "m" / "4" / "model.pkl")


# ------------------------------------------------------------------------------------ the import hook

PROBE = r'''
import json, os, sys
sys.path.insert(0, {runtime!r})
import modelfunc_azureml_compat as compat
compat.install()
out = {{}}
from azureml.core.model import Model
from azureml.core import Model as Model2
import azureml, azureml.core, azureml.exceptions
out["stand_in"] = bool(getattr(azureml.core, compat.STANDIN_MARK, False))
out["azureml_stand_in"] = bool(getattr(azureml, compat.STANDIN_MARK, False))
out["same_model"] = Model is Model2
out["exceptions"] = azureml.exceptions.WebserviceException.__module__
answers = []
for name, version in {calls!r}:
    try:
        answers.append({{"path": Model.get_model_path(name, version=version)}})
    except Exception as e:
        answers.append({{"error": type(e).__name__, "module": type(e).__module__,
                        "message": getattr(e, "message", str(e)),
                        "caught": isinstance(e, (azureml.exceptions.WebserviceException,
                                                 azureml.exceptions.ModelNotFoundException))}})
out["answers"] = answers
try:
    from azureml.core import Workspace  # noqa: F401
    out["workspace"] = "imported"
except ImportError as e:
    out["workspace"] = str(e)
try:
    import azureml.contrib.services.aml_request
    out["contrib"] = "imported"
except ImportError as e:
    out["contrib"] = f"{{type(e).__name__}}: {{e}}"
print("PROBE " + json.dumps(out))
'''

CALLS = [("m", None), ("m", 1), ("f.pkl", None), ("folder", None), ("nope", None), ("nope", 2), ("two", None)]


def probe(model_dir: Path, *, python: str = sys.executable, isolated: bool = True, path: list[Path] = (),
          calls: list = CALLS) -> tuple[dict, str]:
    """Run the hook in a child Python (``-S``: no site-packages, only ``path``, unless not ``isolated``)."""
    env = {**os.environ, "AZUREML_MODEL_DIR": str(model_dir), "PYTHONPATH": os.pathsep.join(map(str, path))}
    cwd = model_dir.parent / "elsewhere"
    cwd.mkdir(exist_ok=True)
    cmd = [python, *(["-S"] if isolated else []), "-c", PROBE.format(runtime=str(RUNTIME_DIR), calls=calls)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
                          stdin=subprocess.DEVNULL)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][6:]), proc.stderr


def expected_paths(model_dir: Path) -> list[str | None]:
    return [str(model_dir / "m" / "3" / "b.pkl"), str(model_dir / "m" / "1" / "a.pkl"), str(model_dir / "f.pkl"),
            str(model_dir / "folder"), None, None, None]


def check_answers(out: dict, model_dir: Path, *, module: str) -> None:
    answers = out["answers"]
    assert [a.get("path") for a in answers] == expected_paths(model_dir)
    assert [(a["error"], a["module"], a["caught"]) for a in answers[4:]] == [
        ("ModelNotFoundException", module, True), ("WebserviceException", module, True),
        ("WebserviceException", module, True)]
    assert answers[4]["message"].startswith("Model nope not found in cache at ")
    assert answers[6]["message"].startswith(f"Dir {model_dir / 'two' / '1'} can contain only 1 file or folder.")


def test_without_any_azureml_the_stand_in_is_a_package_of_its_own(tmp_path: Path) -> None:
    model_dir = tree(tmp_path / "model", LAYOUT)
    out, _ = probe(model_dir)
    assert (out["stand_in"], out["azureml_stand_in"], out["same_model"]) == (True, True, True)
    check_answers(out, model_dir, module="modelfunc_azureml_compat")
    assert out["answers"][4]["message"].startswith(f"Model nope not found in cache at {model_dir} or")
    assert "cannot import name 'Workspace' from 'azureml.core'" in out["workspace"]
    assert "modelfunc_azureml_compat.py" in out["workspace"]  # the message points at the stand-in
    assert out["contrib"].startswith("ModuleNotFoundError")  # nothing else appears under the stand-in azureml


def test_azureml_from_contrib_services_is_kept_beside_the_stand_in(tmp_path: Path) -> None:
    import azureml.contrib.services  # noqa: F401 - this venv has it (the runtime's @rawhttp support)

    model_dir = tree(tmp_path / "model", LAYOUT)
    out, _ = probe(model_dir, isolated=False)
    assert (out["stand_in"], out["azureml_stand_in"]) == (True, False)  # the real azureml package, a stand-in core
    assert out["contrib"] == "imported"
    check_answers(out, model_dir, module="modelfunc_azureml_compat")


def fake_azureml_core(root: Path, core_init: str) -> Path:
    """An ``azureml`` namespace package laid out as azureml-core lays it out, with ``core/__init__.py`` as given."""
    (root / "azureml" / "core").mkdir(parents=True)
    (root / "azureml" / "exceptions").mkdir()
    (root / "azureml" / "__init__.py").write_text("__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    (root / "azureml" / "exceptions" / "__init__.py").write_text(
        "class AzureMLException(Exception):\n"
        "    def __init__(self, exception_message, **kwargs):\n"
        "        super().__init__(exception_message)\n"
        "        self.message = exception_message\n"
        "class WebserviceException(AzureMLException):\n"
        "    def __init__(self, exception_message, status_code=None, logger=None, **kwargs):\n"
        "        super().__init__(exception_message)\n"
        "class ModelNotFoundException(AzureMLException):\n"
        "    def __init__(self, exception_message, logger=None, **kwargs):\n"
        "        super().__init__(exception_message)\n")
    (root / "azureml" / "core" / "__init__.py").write_text(core_init)
    # azureml-core 1.x's Model.get_model_path without a workspace, trimmed: its cache, then ./<name>
    (root / "azureml" / "core" / "model.py").write_text(
        "import os\n"
        "from azureml.exceptions import ModelNotFoundException, WebserviceException\n"
        "MODELS_DIR = os.path.join(os.environ.get('AML_APP_ROOT', ''), 'azureml-models')\n"
        "class Model:\n"
        "    @staticmethod\n"
        "    def get_model_path(model_name, version=None, _workspace=None):\n"
        "        if _workspace is not None:\n"
        "            return 'downloaded from ' + _workspace\n"
        "        if os.path.exists(model_name):\n"
        "            return model_name\n"
        "        message = ('Model {} not found in cache at {} or in current working directory {}. For more info, '\n"
        "                   'set logging level to DEBUG.'.format(model_name, MODELS_DIR, os.getcwd()))\n"
        "        if version is not None:\n"
        "            raise WebserviceException(message)\n"
        "        raise ModelNotFoundException(message)\n")
    return root


def test_an_azureml_core_that_does_not_import_gives_way_to_the_stand_in(tmp_path: Path) -> None:
    site = fake_azureml_core(tmp_path / "site", "from .model import Model\n"
                             "raise ModuleNotFoundError(\"No module named 'azure.mgmt.resource.subscriptions'\")\n")
    model_dir = tree(tmp_path / "model", LAYOUT)
    out, stderr = probe(model_dir, path=[site])
    assert (out["stand_in"], out["azureml_stand_in"], out["same_model"]) == (True, False, True)
    check_answers(out, model_dir, module="modelfunc_azureml_compat")  # the stand-in's exceptions, as azureml.exceptions
    assert out["exceptions"] == "modelfunc_azureml_compat"
    assert ("is installed but does not import here (ModuleNotFoundError: No module named "
            "'azure.mgmt.resource.subscriptions'): score.py gets modelfunc's stand-in for azureml.core") in stderr


def test_an_azureml_core_that_imports_looks_in_azureml_model_dir_first(tmp_path: Path) -> None:
    site = fake_azureml_core(tmp_path / "site", "from .model import Model\n")
    model_dir = tree(tmp_path / "model", LAYOUT)
    out, _ = probe(model_dir, path=[site])
    assert (out["stand_in"], out["azureml_stand_in"], out["same_model"]) == (False, False, True)
    check_answers(out, model_dir, module="azureml.exceptions")  # its own exception types
    message = out["answers"][4]["message"]  # its own sentence (its cache), then where the hook looked first
    assert message.startswith("Model nope not found in cache at azureml-models or in current working directory ")
    assert message.endswith(f"Looked first in AZUREML_MODEL_DIR {model_dir} for nope and nope/<version>/ (modelfunc).")
    # with a workspace, its own method alone (nothing is looked up locally)
    code = ("import sys; sys.path.insert(0, %r); import modelfunc_azureml_compat as c; c.install(); "
            "from azureml.core.model import Model; print('PROBE ' + Model.get_model_path('f.pkl', _workspace='ws'))")
    proc = subprocess.run([sys.executable, "-S", "-c", code % str(RUNTIME_DIR)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site), "AZUREML_MODEL_DIR": str(model_dir)}, timeout=60)
    assert proc.stdout.strip() == "PROBE downloaded from ws", proc.stderr


# ------------------------------------------------------------------------------------ the real azureml-core

REAL_PROBE = r'''
import json, os, sys
from azureml.core.model import Model
answers = []
for name, version in json.loads(sys.argv[1]):
    try:
        path = Model.get_model_path(name, version=version)
        answers.append({"path": os.path.realpath(path)})
    except Exception as e:
        answers.append({"error": type(e).__name__, "message": getattr(e, "message", str(e))})
print("PROBE " + json.dumps(answers))
'''

REFERENCE_CALLS = [("m", None), ("m", 1), ("tf", None), ("f.pkl", None), ("f.pkl", 5), ("folder", None),
                   ("nope", None), ("nope", 2), ("two", None), ("m", "1"), ("m", 2)]


def _reference_pythons() -> list[str]:
    named = [p for p in os.environ.get("MODELFUNC_AZUREML_CORE_PYTHONS", "").split(os.pathsep) if p]
    local = ROOT / ".venv-amlcore" / "bin" / "python"
    return named or ([str(local)] if local.exists() else [])


def _imports_azureml_core(python: str) -> bool:
    return subprocess.run([python, "-c", "import azureml.core"], capture_output=True, timeout=120).returncode == 0


def _real_answers(python: str, cwd: Path, app_root: Path, calls: list) -> list[dict]:
    env = {**os.environ, "AML_APP_ROOT": str(app_root)}
    env.pop("AZUREML_MODEL_DIR", None)
    proc = subprocess.run([python, "-c", REAL_PROBE, json.dumps(calls)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][6:])


def outcomes(answers: list[dict]) -> list[dict]:
    """Each answer as the real path it names, or the name of the exception it raised."""
    return [{"path": os.path.realpath(a["path"])} if "path" in a else {"error": a["error"]} for a in answers]


def _stand_in_answers(calls: list) -> list[dict]:
    answers = []
    for name, version in calls:
        try:
            answers.append({"path": os.path.realpath(Model.get_model_path(name, version=version))})
        except compat.AzureMLException as e:
            answers.append({"error": type(e).__name__, "message": e.message})
    return answers


@pytest.mark.parametrize("python", _reference_pythons() or [pytest.param(None, marks=pytest.mark.skip(
    reason="no Python with azureml-core: set MODELFUNC_AZUREML_CORE_PYTHONS (e.g. a venv made with "
           "`python3.11 -m venv /tmp/amlcore && /tmp/amlcore/bin/pip install azureml-core`)"))])
def test_the_stand_in_answers_as_azureml_core_does(python: str, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    d = tree(tmp_path / "azureml-models", LAYOUT)  # azureml-core's cache folder and AZUREML_MODEL_DIR alike
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(d))
    monkeypatch.chdir(cwd)
    ours = _stand_in_answers(REFERENCE_CALLS)
    if not _imports_azureml_core(python):  # e.g. 1.0.45 on Python 3.11: the hook's stand-in is what score.py gets
        out, stderr = probe(d, python=python, isolated=False, calls=REFERENCE_CALLS)
        assert out["stand_in"] and "is installed but does not import here" in stderr
        assert outcomes(out["answers"]) == outcomes(ours)
        return
    cache = _real_answers(python, cwd=d, app_root=tmp_path, calls=REFERENCE_CALLS)  # the tree as its cache
    local = _real_answers(python, cwd=d, app_root=tmp_path / "none", calls=REFERENCE_CALLS)  # as its ./<name>
    by_call = {call: (o, c, lo) for call, o, c, lo in zip(REFERENCE_CALLS, ours, cache, local, strict=True)}

    def same(call: tuple, theirs: dict) -> None:
        o = by_call[call][0]
        if "path" in theirs:
            assert o == theirs, call
        else:
            assert o["error"] == theirs["error"], (call, o, theirs)
            sentence = theirs["message"].replace(f"current working directory {os.path.realpath(d)}",
                                                 f"current working directory {os.getcwd()}")
            assert o["message"].startswith(sentence.split(" Found ")[0]), (call, o, theirs)

    for call in [("m", None), ("m", 1), ("tf", None), ("f.pkl", 5), ("nope", None), ("nope", 2), ("two", None),
                 ("m", "1")]:
        same(call, by_call[call][1])  # read as its cache
    for call in [("f.pkl", None), ("folder", None)]:
        same(call, by_call[call][2])  # found in its working directory
    # the documented differences
    assert by_call[("f.pkl", None)][1]["error"] == "NotADirectoryError"
    assert by_call[("folder", None)][1]["error"] == "ValueError"
    assert by_call[("m", 2)][1] == {"path": os.path.realpath(d / "m")}
    assert by_call[("m", 2)][0]["error"] == "WebserviceException"
    # and azureml-core's own Model, through the hook, answers from AZUREML_MODEL_DIR as the stand-in does
    out, _ = probe(d, python=python, isolated=False, calls=REFERENCE_CALLS)
    assert not out["stand_in"] and out["exceptions"].startswith("azureml.exceptions")
    assert outcomes(out["answers"]) == outcomes(ours)


# ------------------------------------------------------------------------------------ end to end in the app

DOCS_SCORE = '''\
"""An Azure ML v1 docs entry script: the model found with Model.get_model_path."""
import json
import os

import numpy as np
from azureml.core.model import Model


def init():
    global model
    model_path = Model.get_model_path({call})
    if os.path.isdir(model_path):
        model_path = os.path.join(model_path, "model.json")
    with open(model_path) as f:
        model = json.load(f)


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    return (data @ np.asarray(model["coef"]) + model["intercept"]).round(4).tolist()
'''


def docs_repo(example, call: str, layout: dict[str, str]) -> Path:  # noqa: ANN001
    """diabetes-blob with the docs' way of finding the model, and its model/ laid out as ``layout`` says
    (file in model/ → where model.json goes; "zeros" makes a model that answers [0, 0] instead)."""
    repo = example("diabetes-blob")
    good = (repo / "model" / "model.json").read_text()
    zeros = json.dumps({**json.loads(good), "coef": [0.0] * 10, "intercept": 0.0})
    (repo / "model" / "model.json").unlink()
    for rel, kind in layout.items():
        (repo / "model" / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / "model" / rel).write_text(good if kind == "good" else zeros)
    (repo / "score.py").write_text(DOCS_SCORE.format(call=call))
    return repo


def selftest(repo: Path, out: Path) -> dict:
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    proc = subprocess.run([sys.executable, "-m", "modelfunc_runtime", "selftest", str(repo / "samples" / "input.json"),
                           "score_blob"], cwd=out / "app", capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith(SELFTEST_MARK)]
    return json.loads(line[len(SELFTEST_MARK):])


@pytest.mark.parametrize(("call", "layout"), [
    ("'model.json'", {"model.json": "good"}),  # <dir>/<file>
    ("'diabetes'", {"diabetes/model.json": "good"}),  # <dir>/<name>, a folder
    ("'diabetes'", {"diabetes/1/model.json": "zeros", "diabetes/2/model.json": "good"}),  # the latest version
    ("model_name='diabetes', version=1", {"diabetes/1/model.json": "good", "diabetes/2/model.json": "zeros"}),
], ids=["dir-file", "dir-name-folder", "dir-name-latest-version", "dir-name-version-1"])
def test_the_docs_score_py_runs_in_the_app(example, tmp_path: Path, call: str, layout: dict) -> None:  # noqa: ANN001
    repo = docs_repo(example, call, layout)
    result = selftest(repo, tmp_path / "out")
    assert result["ok"], result
    assert json.loads(result["direct"]["body"]) == json.loads((repo / "samples" / "expected.json").read_text())
    assert result["function"]["body"] == result["direct"]["body"]


def test_a_model_that_is_not_there_fails_init_with_azureml_cores_error(example, tmp_path: Path) -> None:  # noqa: ANN001
    repo = docs_repo(example, "'sklearn_regression_model.pkl'", {"model.json": "good"})
    result = selftest(repo, tmp_path / "out")
    assert not result["ok"]
    app_model = (tmp_path / "out" / "app" / "model").resolve()
    assert ("init() of score.py failed: ModelNotFoundException: ModelNotFoundException:\n\tMessage: Model "
            f"sklearn_regression_model.pkl not found in cache at {app_model} or in current working directory") \
        in result["error"], result["error"]


def test_the_stand_in_ships_with_every_app(example, tmp_path: Path) -> None:  # noqa: ANN001
    repo = example("diabetes-servicebus")
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "out"), timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "app" / COMPAT.name).read_bytes() == COMPAT.read_bytes()
    with tarfile.open(tmp_path / "out" / "layers" / "code.tar") as tar:  # the image's code layer has it too
        assert f"home/site/wwwroot/{COMPAT.name}" in tar.getnames()
    repo = example("diabetes-http")
    (repo / COMPAT.name).write_text("# mine\n")  # the app's own file: a name the app needs is refused
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "out2"), timeout=600)
    assert result.returncode != 0 and COMPAT.name in result.stderr


def test_the_docs_score_py_answers_through_the_local_host(example, serve) -> None:  # noqa: ANN001
    """`modelfunc serve`: the app in its own environment (numpy and azure-functions only: no azureml at all), the
    model found in the versions layout by the stand-in."""
    import httpx

    repo = docs_repo(example, "'diabetes'", {"diabetes/1/model.json": "zeros", "diabetes/2/model.json": "good"})
    (repo / "modelfunc.yaml").write_text("trigger:\n  type: http\n  auth_level: anonymous\n  methods: [POST]\n"
                                         "samples:\n  tolerance: 1.0e-4\n")
    host = serve(repo)
    answer = httpx.post(f"{host.url}/api/score", content=(repo / "samples" / "input.json").read_bytes(),
                        headers={"content-type": "application/json"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json() == json.loads((repo / "samples" / "expected.json").read_text())


@pytest.mark.usefixtures("docker_engine")
def test_the_docs_score_py_self_tests_inside_the_image(example, tmp_path: Path) -> None:  # noqa: ANN001
    """The image (the local base, tests/support/engine.py): its in-image self-test scores with the model found by the
    stand-in in the versions layout (skipped without a Docker engine, as tests/image/test_image.py is)."""
    from support.engine import package

    repo = docs_repo(example, "'diabetes'", {"diabetes/1/model.json": "zeros", "diabetes/2/model.json": "good"})
    result, data = package(repo, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert data["self_test"]["passed"], data["self_test"]
    assert json.loads(data["self_test"]["body"]) == json.loads((repo / "samples" / "expected.json").read_text())
