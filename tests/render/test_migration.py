"""Azure ML v1 projects run unchanged (issue 14): a project laid out exactly as the Azure ML v1 docs lay it out —
their score.py calling ``Model.get_model_path('sklearn_regression_model.pkl')``, inferenceconfig.json, a conda
myenv.yml pinning ``python=3.6.2`` with azureml-defaults and scikit-learn, the model file at the root — goes green
with ``modelfunc init``, ``modelfunc sample record`` and ``modelfunc up``, and nothing of the project changes.

Then each way such a project (or init, or sample record) goes wrong: the real CLI in a child process, the message
shown, exit 2 (1 for a sample that does not score), no traceback, and nothing written. ``ROWS`` turns the cases into
rows of docs/bad-inputs.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from modelfunc.appgen import render
from modelfunc.cli import main
from modelfunc.config import SUPPORTED_PYTHON, PythonTarget, load_project, nearest_python
from modelfunc.environment import read_requirements
from modelfunc.errors import ConfigError, EnvironmentSpecError
from modelfunc.sourcedir import BUILD_MARKER
from support.cases.migration import (
    CASES,
    INFERENCE_CONFIG,
    MODEL,
    MYENV_YML,
    SAMPLE,
    SAMPLES,
    Bad,
)
from support.core import run_modelfunc

# ------------------------------------------------------------------ the project, as the Azure ML v1 docs have it

# The entry script of the docs (how-to-deploy-and-where, and MachineLearningNotebooks' deploy-to-local score.py),
# with `import joblib` for the `from sklearn.externals import joblib` that scikit-learn removed in 0.23.
SCORE_PY = '''\
import json
import numpy as np
import os
import joblib
from azureml.core.model import Model


def init():
    global model
    # note here "sklearn_regression_model.pkl" is the name of the model registered under
    # this is a different behavior than before when the code is run locally, even though the code is the same.
    model_path = Model.get_model_path('sklearn_regression_model.pkl')
    # deserialize the model file back into a sklearn model
    model = joblib.load(model_path)


# note you can pass in multiple rows for scoring
def run(raw_data):
    try:
        data = json.loads(raw_data)['data']
        data = np.array(data)
        result = model.predict(data)
        # you can return any data type as long as it is JSON-serializable
        return result.tolist()
    except Exception as e:
        error = str(e)
        return error
'''


def train_model(path: Path) -> None:
    """The docs' model: scikit-learn's Ridge regression on its bundled diabetes data, pickled with joblib."""
    import joblib
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    joblib.dump(Ridge(alpha=0.03).fit(x, y), path)


_MODEL_BYTES: dict[str, bytes] = {}


def aml_project(parent: Path, name: str = "aml-project") -> Path:
    """A fresh Azure ML v1 project: score.py, inferenceconfig.json, myenv.yml and the model file at the root."""
    repo = parent / name
    repo.mkdir(parents=True)
    (repo / "score.py").write_text(SCORE_PY)
    (repo / "inferenceconfig.json").write_text(INFERENCE_CONFIG)
    (repo / "myenv.yml").write_text(MYENV_YML)
    if "model" not in _MODEL_BYTES:
        train_model(parent / "model.pkl")
        _MODEL_BYTES["model"] = (parent / "model.pkl").read_bytes()
    (repo / MODEL).write_bytes(_MODEL_BYTES["model"])
    return repo


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


# ------------------------------------------------------------------ the migration, end to end


def test_an_azure_ml_v1_project_goes_green_with_init_and_nothing_else_changed(tmp_path: Path) -> None:
    repo = aml_project(tmp_path)
    (repo / ".git").mkdir()  # a git checkout, as such a project is: nothing of it may reach the app
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    sample = tmp_path / "sample_input.json"
    sample.write_text(SAMPLE)
    before = files(repo)

    init = run_modelfunc("init", str(repo), "--trigger", "blob", "--input-path", "input/{blobname}.json",
                         "--output-path", "output/{blobname}_out.json", "--python-version", "3.11",
                         "--sample", str(sample))
    assert init.returncode == 0, init.stdout + init.stderr
    assert "inferenceconfig.json: entryScript score.py, conda file myenv.yml" in init.stderr
    assert f"model files: {MODEL}" in init.stderr
    assert "python pin: myenv.yml:3 dependencies[0]: python=3.6.2 (no Azure Functions image runs Python 3.6" \
        in init.stderr
    assert init.stdout.startswith("Wrote modelfunc.yaml:")
    config = (repo / "modelfunc.yaml").read_text()
    for line in ('python_version: "3.11"', "python_pin: ignore", f"  - {MODEL}", "  type: blob",
                 "  input_path: input/{blobname}.json", "  output_path: output/{blobname}_out.json",
                 "  input: samples/input.json", "environment: myenv.yml"):
        assert line in config, config
    assert (repo / "samples" / "input.json").read_text() == SAMPLE

    record = run_modelfunc("sample", "record", str(repo), "--yes", timeout=900)
    assert record.returncode == 0, record.stdout + record.stderr
    assert record.stdout.startswith("run()'s answer to samples/input.json:")
    expected = json.loads((repo / "samples" / "expected.json").read_text())
    assert isinstance(expected, list) and len(expected) == 2 and all(isinstance(v, float) for v in expected), expected
    assert record.stdout.index("[") < record.stdout.index("Wrote samples/expected.json")  # shown, then written

    up = run_modelfunc("up", str(repo), "--image", "off", "--timeout", "120", timeout=900)
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.startswith("PASS: blob round trip"), up.stdout
    assert "PASS: the answer to samples/input.json in each place" in up.stdout

    after = files(repo)
    changed = sorted(rel for rel in before if after.get(rel) != before[rel])
    assert changed == [], f"the project's own files changed: {changed}"
    added = sorted(rel for rel in after if rel not in before and not rel.startswith("build/"))
    assert added == ["modelfunc.yaml", "samples/expected.json", "samples/input.json"], added
    app = repo / "build" / "app"
    assert sorted(p.name for p in (app / "model").iterdir()) == [MODEL]  # the model layer: the model, only
    assert (app / "model" / MODEL).read_bytes() == before[MODEL]
    shipped = files(app)
    assert not any(rel.endswith(".pkl") and not rel.startswith("model/") for rel in shipped), sorted(shipped)
    assert not any(rel.startswith(".git") for rel in shipped), sorted(shipped)
    assert "score.py" in shipped and "myenv.yml" not in shipped and "modelfunc.yaml" not in shipped


# ------------------------------------------------------------------ without modelfunc.yaml


def test_without_modelfunc_yaml_inferenceconfig_json_is_read_and_said_so(tmp_path: Path) -> None:
    repo = aml_project(tmp_path)
    (repo / "myenv.yml").write_text(MYENV_YML.replace("python=3.6.2", "python=3.12"))
    (repo / "samples").mkdir()
    (repo / "samples" / "input.json").write_text(SAMPLE)
    (repo / "samples" / "expected.json").write_text("[1.0, 2.0]\n")
    project = load_project(repo)
    assert project.config_path == (repo / "inferenceconfig.json").resolve()
    assert project.entry_script == (repo / "score.py").resolve()
    assert project.environment_file == (repo / "myenv.yml").resolve()
    assert project.model_files == ((repo / MODEL).resolve(),)
    assert project.trigger.type == "http"
    assert project.config.python_version == "3.12"  # the conda file's pin, when a Functions image runs it
    assert project.notes[0].startswith("no modelfunc.yaml: read inferenceconfig.json (entry script score.py, "
                                       f"environment myenv.yml, model files {MODEL}); trigger http")
    assert any("extraDockerfileSteps" not in n for n in project.notes)
    progress: list[str] = []
    result = render(project, tmp_path / "out", progress=progress.append)
    assert f"note: {project.notes[0]}" in progress
    assert sorted(p.name for p in (result.app_dir / "model").iterdir()) == [MODEL]
    assert not (result.app_dir / MODEL).exists()


def test_without_modelfunc_yaml_a_missing_sample_names_the_file_and_init(tmp_path: Path) -> None:
    repo = aml_project(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_project(repo)
    assert e.value.file == str((repo / "samples" / "input.json").resolve())
    assert "not found: without a modelfunc.yaml, modelfunc read inferenceconfig.json" in e.value.message
    assert "modelfunc init --sample FILE" in (e.value.hint or "")


def test_the_newer_inference_config_with_its_environment_inline(tmp_path: Path) -> None:
    """The docs' second form: sourceDirectory, and the environment with its conda dependencies inline (init writes
    them to environment.yml); paths relative to sourceDirectory, as Azure ML reads them."""
    repo = tmp_path / "inline"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "score.py").write_text(SCORE_PY)
    train_model(repo / "src" / MODEL)
    (repo / "inferenceconfig.json").write_text(json.dumps({
        "entryScript": "score.py", "sourceDirectory": "./src",
        "environment": {"docker": {"baseImage": "mcr.microsoft.com/azureml/base:intelmpi2018.3-ubuntu16.04"},
                        "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}, "name": "my-deploy-env",
                        "python": {"condaDependencies": {"channels": ["conda-forge"], "dependencies": [
                            "python=3.6.2", {"pip": ["azureml-defaults", "scikit-learn", "numpy"]}],
                            "name": "project_environment"}, "interpreterPath": "python",
                            "userManagedDependencies": False}, "version": "1"}}, indent=4))
    result = CliRunner().invoke(main, ["init", str(repo), "--trigger", "http", "--auth-level", "anonymous",
                                       "--python-version", "3.11", "--no-interactive"])
    assert result.exit_code == 0, result.output
    assert "conda dependencies inline (environment.python.condaDependencies)" in result.output
    assert "environment.environmentVariables (EXAMPLE_ENV_VAR) are not set by modelfunc" in result.output
    env = (repo / "environment.yml").read_text()
    assert "- python=3.6.2" in env and "azureml-defaults" in env
    config = (repo / "modelfunc.yaml").read_text()
    assert "entry_script: src/score.py" in config and "environment: environment.yml" in config
    assert f"  - src/{MODEL}" in config and "auth_level: anonymous" in config and "python_pin: ignore" in config
    (repo / "samples").mkdir()
    (repo / "samples" / "input.json").write_text(SAMPLE)
    project = load_project(repo, require_expected=False)
    assert project.model_files == ((repo / "src" / MODEL).resolve(),)
    assert read_requirements(project.environment_file, python_version=project.config.python_version).lines == [
        "azure-functions", "azureml-defaults", "scikit-learn", "numpy"]


# ------------------------------------------------------------------ init: asking, and the pin override


def test_init_asks_only_what_the_chosen_trigger_needs(tmp_path: Path) -> None:
    repo = aml_project(tmp_path)
    sample = tmp_path / "in.json"
    sample.write_text(SAMPLE)
    # trigger, input path (default), output path, the Python (default: the nearest), the sample
    answers = f"blob\n\nout/{{blobname}}.json\n\n{sample}\n"
    result = CliRunner().invoke(main, ["init", str(repo), "--interactive"], input=answers)
    assert result.exit_code == 0, result.output
    for question in ("Trigger", "Input blobs (package(input_path=...))", "Output blobs (package(output_path=...))",
                     "pins python=3.6.2, which no Azure Functions image runs; the app's Python",
                     "A sample input file"):
        assert question in result.output
    assert "Auth level" not in result.output and "Input queue" not in result.output
    config = (repo / "modelfunc.yaml").read_text()
    assert f'python_version: "{nearest_python("3.6")}"' in config and "python_pin: ignore" in config
    assert "input_path: input/{blobname}.json" in config and "output_path: out/{blobname}.json" in config

    http = aml_project(tmp_path, "http")
    result = CliRunner().invoke(main, ["init", str(http), "--interactive", "--python-version", "3.12"],
                                input="http\nadmin\n\n")
    assert result.exit_code == 0, result.output
    assert "Auth level" in result.output and "Input blobs" not in result.output
    assert "  auth_level: admin" in (http / "modelfunc.yaml").read_text()


def test_a_supported_pin_needs_no_override_and_the_override_reads_requirements(tmp_path: Path) -> None:
    repo = aml_project(tmp_path)
    (repo / "myenv.yml").write_text(MYENV_YML.replace("python=3.6.2", "python=3.12"))
    result = CliRunner().invoke(main, ["init", str(repo), "--trigger", "http", "--no-interactive"])
    assert result.exit_code == 0, result.output
    config = (repo / "modelfunc.yaml").read_text()
    assert 'python_version: "3.12"' in config and "python_pin" not in config
    # python_pin: ignore reaches the environment file's reader with the version (config.PythonTarget)
    pinned = tmp_path / "old.yml"
    pinned.write_text(MYENV_YML)
    with pytest.raises(EnvironmentSpecError):
        read_requirements(pinned, python_version="3.11")
    lines = read_requirements(pinned, python_version=PythonTarget("3.11", pin_ignored=True)).lines
    assert lines == ["azure-functions", "scikit-learn", "azureml-defaults"]


def test_the_nearest_supported_python() -> None:
    assert nearest_python("3.6") == nearest_python("3.7") == SUPPORTED_PYTHON[0]
    assert nearest_python("3.99") == SUPPORTED_PYTHON[-1]
    assert nearest_python("3.11") == "3.11"


def test_init_force_replaces_and_a_failed_init_writes_nothing(tmp_path: Path) -> None:
    repo = aml_project(tmp_path)
    first = CliRunner().invoke(main, ["init", str(repo), "--trigger", "http", "--python-version", "3.11",
                                      "--no-interactive"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, ["init", str(repo), "--trigger", "blob", "--python-version", "3.11",
                                      "--no-interactive", "--force"])
    assert again.exit_code == 0, again.output
    assert "  type: blob" in (repo / "modelfunc.yaml").read_text()
    before = snapshot(repo)
    sample = tmp_path / "s.json"
    sample.write_text(SAMPLE)
    bad = CliRunner().invoke(main, ["init", str(repo), "--trigger", "blob", "--python-version", "3.11", "--force",
                                    "--input-path", "input/{name}.json", "--sample", str(sample), "--no-interactive"])
    assert bad.exit_code == 2, bad.output
    assert "error: --input-path: 'input/{name}.json' must contain {blobname}" in bad.output
    assert snapshot(repo) == before  # neither the sample nor the config was written


# ------------------------------------------------------------------ the model layer


def test_model_files_beside_score_py_ship_alone_in_the_model_layer(tmp_path: Path) -> None:
    """model_dir: . (the folder of score.py): its model files are the model layer, nothing else is — not .git,
    virtual environments, caches, node_modules or an earlier build output — and the code layer has no model file."""
    repo = aml_project(tmp_path)
    (repo / "weights.onnx").write_bytes(b"onnx")
    for junk in (".git/objects/ab/cdef.pkl", ".venv/lib/x.pkl", "env/pyvenv.cfg", "env/lib/y.pkl", "venv/z.pkl",
                 "__pycache__/score.cpython-311.pyc", ".pytest_cache/v/cache.pkl", ".mypy_cache/m.pkl",
                 ".ruff_cache/r.pkl", "node_modules/pkg/w.bin", f"old-build/{BUILD_MARKER}", "old-build/app/m.pkl"):
        (repo / junk).parent.mkdir(parents=True, exist_ok=True)
        (repo / junk).write_bytes(b"junk")
    (repo / "samples").mkdir()
    (repo / "samples" / "input.json").write_text(SAMPLE)
    (repo / "samples" / "expected.json").write_text("[1.0]\n")
    (repo / "modelfunc.yaml").write_text('model_dir: .\npython_version: "3.11"\npython_pin: ignore\n'
                                         'environment: myenv.yml\ntrigger: http\n')
    project = load_project(repo)
    assert project.model_files == ((repo / MODEL).resolve(), (repo / "weights.onnx").resolve())
    assert any(n.startswith("model_dir '.' holds score.py: its model files") for n in project.notes)
    result = render(project, repo / "build")
    app = result.app_dir
    assert sorted(files(app / "model")) == [MODEL, "weights.onnx"]
    code = files(app)
    assert not any(rel.endswith((".pkl", ".onnx", ".bin")) and not rel.startswith("model/") for rel in code), code
    assert not any(rel.split("/")[0] in (".git", ".venv", "env", "venv", "__pycache__", "node_modules", "old-build")
                   for rel in code), sorted(code)


def test_a_model_folder_listed_in_model_files_keeps_its_name_and_skips_tooling(tmp_path: Path) -> None:
    repo = aml_project(tmp_path)
    (repo / "outputs" / "__pycache__").mkdir(parents=True)
    (repo / "outputs" / "vocab.txt").write_text("a\nb\n")
    (repo / "outputs" / "__pycache__" / "x.pyc").write_bytes(b"x")
    (repo / "outputs" / ".git").mkdir()
    (repo / "outputs" / ".git" / "HEAD").write_text("x")
    SAMPLES(repo)
    (repo / "modelfunc.yaml").write_text(f'python_version: "3.11"\npython_pin: ignore\nenvironment: myenv.yml\n'
                                         f"model_files: [{MODEL}, outputs]\ntrigger: http\n")
    project = load_project(repo)
    result = render(project, tmp_path / "out")
    assert sorted(files(result.app_dir / "model")) == ["outputs/vocab.txt", MODEL]
    assert not (result.app_dir / "outputs").exists() and not (result.app_dir / MODEL).exists()


# ------------------------------------------------------------------ sample record


def test_sample_record_shows_the_answer_and_asks_before_writing(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from modelfunc import amlv1
    from modelfunc.golden import Answer

    repo = aml_project(tmp_path)
    (repo / "samples").mkdir()
    (repo / "samples" / "input.json").write_text(SAMPLE)
    (repo / "modelfunc.yaml").write_text('python_version: "3.11"\npython_pin: ignore\nenvironment: myenv.yml\n'
                                         f"model_files: [{MODEL}]\ntrigger: http\n")
    monkeypatch.setattr(amlv1, "score_sample", lambda *a, **k: Answer(where="x", body=b"[1.5, 2.5]", status=200))
    declined = CliRunner().invoke(main, ["sample", "record", str(repo), "--interactive"], input="n\n")
    assert declined.exit_code == 1
    assert declined.output.index("1.5") < declined.output.index("Write samples/expected.json with it?")
    assert not (repo / "samples" / "expected.json").exists()
    accepted = CliRunner().invoke(main, ["sample", "record", str(repo), "--interactive"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert json.loads((repo / "samples" / "expected.json").read_text()) == [1.5, 2.5]
    same = CliRunner().invoke(main, ["sample", "record", str(repo), "--yes"])
    assert "holds this answer already: unchanged" in same.output
    monkeypatch.setattr(amlv1, "score_sample",
                        lambda *a, **k: Answer(where="x", error="the self-test exited with code 1"))
    failed = CliRunner().invoke(main, ["sample", "record", str(repo), "--yes"])
    assert failed.exit_code == 1
    assert "run() gave no answer to samples/input.json: the self-test exited with code 1; nothing was written" \
        in failed.output
    assert json.loads((repo / "samples" / "expected.json").read_text()) == [1.5, 2.5]


# ------------------------------------------------------------------ each bad input: its message, nothing written


@pytest.mark.parametrize("bad", CASES)
def test_bad_migration_input(bad: Bad, tmp_path: Path) -> None:
    repo = aml_project(tmp_path)
    bad.breaks(repo)
    before = snapshot(tmp_path)
    result = run_modelfunc(*[a.replace("{repo}", str(repo)) for a in bad.args], timeout=120)
    err = result.stderr
    assert "Traceback" not in err, err
    assert result.returncode == bad.code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{err}"
    for text in bad.expect:
        assert text.replace("<repo>", str(repo)) in err, f"{text!r} not in stderr:\n{err}"
    assert snapshot(tmp_path) == before, "the failed command changed files"
    shutil.rmtree(repo)


def test_the_cases_are_distinct() -> None:
    ids = [p.id for p in CASES]
    assert len(set(ids)) == len(ids) and len(ids) >= 20
