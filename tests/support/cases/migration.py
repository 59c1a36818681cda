"""Issue 14, Azure ML v1 projects: the cases render/test_migration.py runs and the rows of docs/bad-inputs.md made from
them."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from modelfunc.config import SUPPORTED_PYTHON, nearest_python

from support.repo_steps import Step, steps, write

# inferenceconfig.json as `az ml model deploy --ic` takes it (the docs' machine-learning-service-inference-config).
INFERENCE_CONFIG = '''\
{
    "entryScript": "score.py",
    "runtime": "python",
    "condaFile": "myenv.yml",
    "extraDockerfileSteps": null,
    "sourceDirectory": null,
    "enableGpu": false,
    "baseImage": null,
    "baseImageRegistry": null
}
'''


MYENV_YML = '''\
name: project_environment
dependencies:
  - python=3.6.2
  - scikit-learn
  - pip:
    - azureml-defaults
'''


# The docs' test data: two rows of the diabetes data's ten features.
SAMPLE = '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}\n'


MODEL = "sklearn_regression_model.pkl"


MIGRATION = "Azure ML v1 project"


CONFIG = f'python_version: "3.11"\nenvironment: myenv.yml\nmodel_files: [{MODEL}]\ntrigger: http\n'


SAMPLES = steps(write("samples/input.json", SAMPLE), write("samples/expected.json", "[1.0, 2.0]\n"))


INIT = ["init", "{repo}", "--trigger", "blob", "--python-version", "3.11", "--no-interactive"]


@dataclass(frozen=True)
class Bad:
    what: str  # what is wrong, in words
    breaks: Step  # what is done to the docs' project
    args: tuple[str, ...]  # the command ("{repo}": the project)
    expect: tuple[str, ...]  # in stderr ("<repo>": the project)
    code: int = 2


def case(id_: str, what: str, breaks: Step, args: list[str], *expect: str, code: int = 2):  # noqa: ANN201
    return pytest.param(Bad(what, breaks, tuple(args), expect, code), id=id_)


CASES = [
    case("aml-inferenceconfig-not-json", "inferenceconfig.json is not JSON (a comma missing)",
         write("inferenceconfig.json", '{\n    "entryScript": "score.py"\n    "condaFile": "myenv.yml"\n}\n'), INIT,
         "error: <repo>/inferenceconfig.json:3: is not valid JSON: Expecting ',' delimiter (column 5)",
         "hint: inferenceconfig.json is the JSON file `az ml model deploy --ic` reads"),
    case("aml-inferenceconfig-without-entry-script", "inferenceconfig.json has no entryScript",
         write("inferenceconfig.json", '{"runtime": "python", "condaFile": "myenv.yml"}\n'), INIT,
         "error: <repo>/inferenceconfig.json: entryScript: is missing: it names the entry script, the one defining "
         "init() and run()", 'hint: add "entryScript": "score.py"'),
    case("aml-inferenceconfig-entry-script-not-found", "inferenceconfig.json's entryScript names no file",
         write("inferenceconfig.json", INFERENCE_CONFIG.replace('"score.py"', '"scoring.py"')), INIT,
         "error: <repo>/inferenceconfig.json:2: entryScript: 'scoring.py' does not exist (looked for scoring.py)",
         "hint: paths in inferenceconfig.json are relative to sourceDirectory when it is set, else to the file's own "
         "folder"),
    case("aml-inferenceconfig-entry-script-not-python", "inferenceconfig.json's entryScript is a notebook",
         write("inferenceconfig.json", INFERENCE_CONFIG.replace('"score.py"', '"score.ipynb"')), INIT,
         "error: <repo>/inferenceconfig.json:2: entryScript: 'score.ipynb' is not a Python file"),
    case("aml-inferenceconfig-conda-file-not-found", "inferenceconfig.json's condaFile names no file",
         write("inferenceconfig.json", INFERENCE_CONFIG.replace('"myenv.yml"', '"env.yml"')), INIT,
         "error: <repo>/inferenceconfig.json:4: condaFile: 'env.yml' does not exist (looked for env.yml)"),
    case("aml-inferenceconfig-spark-runtime", "inferenceconfig.json's runtime is spark-py",
         write("inferenceconfig.json", INFERENCE_CONFIG.replace('"python"', '"spark-py"')), INIT,
         "error: <repo>/inferenceconfig.json:3: runtime: \"spark-py\" is not a runtime an Azure Functions app has"),
    case("aml-inferenceconfig-source-directory-missing", "inferenceconfig.json's sourceDirectory is no folder",
         write("inferenceconfig.json", INFERENCE_CONFIG.replace('"sourceDirectory": null',
                                                                 '"sourceDirectory": "./src"')), INIT,
         "error: <repo>/inferenceconfig.json:6: sourceDirectory: './src' does not exist or is not a folder"),
    case("aml-python-3.6-pin-without-override", "myenv.yml pins python=3.6.2, init without --python-version",
         lambda repo: None, ["init", "{repo}", "--trigger", "blob", "--no-interactive"],
         "error: <repo>/myenv.yml:3: dependencies[0]: pins python 3.6.2, and no Azure Functions image runs Python 3.6",
         f"the nearest is {nearest_python('3.6')})",
         f"hint: give the version the app should run: modelfunc init --python-version {nearest_python('3.6')} "
         "(modelfunc.yaml then says python_pin: ignore, and myenv.yml stays as Azure ML reads it)"),
    case("aml-python-3.7-pin-at-package", "myenv.yml pins python=3.7 and modelfunc.yaml has no python_pin",
         steps(write("myenv.yml", MYENV_YML.replace("3.6.2", "3.7")), write("modelfunc.yaml", CONFIG), SAMPLES),
         ["package", "{repo}", "--no-build"],
         "error: <repo>/myenv.yml:3: dependencies[0]: pins python 3.7, but the app targets Python 3.11, and no Azure "
         "Functions image runs Python 3.7",
         "hint: use python=3.11 here, or set python_version in modelfunc.yaml and, to leave this file as Azure ML "
         f"reads it, python_pin: ignore beside it (`modelfunc init --python-version {nearest_python('3.7')}` writes "
         "both)"),
    case("aml-init-python-version-functions-lacks", "init --python-version 3.6",
         lambda repo: None, ["init", "{repo}", "--trigger", "http", "--python-version", "3.6", "--no-interactive"],
         "error: --python-version: '3.6' is not a Python version Azure Functions runs; use one of: "
         + ", ".join(SUPPORTED_PYTHON)),
    case("aml-init-over-existing-modelfunc-yaml", "init where modelfunc.yaml exists, without --force",
         write("modelfunc.yaml", "trigger: http\n"), INIT,
         "error: <repo>/modelfunc.yaml: exists already: init does not replace it",
         "hint: --force writes it again from what is in the repo and the options given"),
    case("aml-init-without-trigger-no-terminal", "init without --trigger, stdin not a terminal",
         lambda repo: None, ["init", "{repo}", "--python-version", "3.11"],
         "error: --trigger: is required when stdin is not a terminal",
         "hint: the trigger the old package(trigger=...) took: --trigger blob, http or service-bus-queue"),
    case("aml-init-input-path-without-blobname", "init --input-path without {blobname}",
         lambda repo: None, [*INIT, "--input-path", "input/{name}.json"],
         "error: --input-path: 'input/{name}.json' must contain {blobname}, e.g. 'input/{blobname}.json'"),
    case("aml-init-option-of-another-trigger", "init --trigger http --input-path ...",
         lambda repo: None, ["init", "{repo}", "--trigger", "http", "--python-version", "3.11", "--input-path",
                             "input/{blobname}.json"],
         "error: --input-path: applies to the blob trigger, not http",
         "hint: leave --input-path out, or choose that trigger: --trigger blob"),
    case("aml-init-service-bus-without-queues", "init --trigger service_bus_queue without the queue names",
         lambda repo: None, ["init", "{repo}", "--trigger", "service_bus_queue", "--python-version", "3.11"],
         "error: --input-queue: is required but missing"),
    case("aml-init-no-project", "init in a folder with neither inferenceconfig.json nor score.py",
         steps(lambda repo: (repo / "inferenceconfig.json").unlink(), lambda repo: (repo / "score.py").unlink()), INIT,
         "error: <repo>: holds no inferenceconfig.json and no score.py: nothing to read the project from"),
    case("aml-two-inference-configs", "two inference configs at the root",
         write("inference_config.json", INFERENCE_CONFIG), INIT,
         "error: <repo>: holds 2 Azure ML inference configs (inference_config.json, inferenceconfig.json)",
         "hint: write modelfunc.yaml: `modelfunc init --inference-config FILE` reads the one you name"),
    case("aml-inline-environment-without-modelfunc-yaml", "no modelfunc.yaml, the environment inline in "
         "inferenceconfig.json", steps(write("inferenceconfig.json", json.dumps(
             {"entryScript": "score.py", "environment": {"python": {"condaDependencies": {
                 "dependencies": ["python=3.11", {"pip": ["scikit-learn"]}]}}}}, indent=2)), SAMPLES),
         ["package", "{repo}", "--no-build"],
         "error: <repo>/inferenceconfig.json:5: environment: gives the conda dependencies inline",
         "hint: run `modelfunc init`: it writes them to environment.yml and writes modelfunc.yaml"),
    case("aml-model-files-and-model-dir", "modelfunc.yaml sets model_dir and model_files",
         steps(write("modelfunc.yaml", CONFIG + "model_dir: model\n"), SAMPLES), ["package", "{repo}", "--no-build"],
         "error: <repo>/modelfunc.yaml: model_dir and model_files are both set"),
    case("aml-model-file-missing", "modelfunc.yaml's model_files names no file",
         steps(write("modelfunc.yaml", CONFIG.replace(f"[{MODEL}]", "[model.pkl]")), SAMPLES),
         ["package", "{repo}", "--no-build"],
         "error: <repo>/modelfunc.yaml:3: model_files[0]: 'model.pkl' does not exist"),
    case("aml-model-files-pattern", "modelfunc.yaml's model_files holds a pattern",
         steps(write("modelfunc.yaml", CONFIG.replace(f"[{MODEL}]", '["*.pkl"]')), SAMPLES),
         ["package", "{repo}", "--no-build"],
         "error: <repo>/modelfunc.yaml:3: model_files: '*.pkl' is not a model file: name each file"),
    case("aml-model-dir-dot-without-model-files", "model_dir: . where score.py is, no model file beside it",
         steps(write("modelfunc.yaml", CONFIG.replace(f"model_files: [{MODEL}]", "model_dir: .")), SAMPLES,
               lambda repo: (repo / MODEL).unlink()), ["package", "{repo}", "--no-build"],
         "error: <repo>/modelfunc.yaml:3: model_dir: '.' holds the entry script score.py, and no model files are "
         "directly in it"),
    case("aml-sample-record-without-yes", "sample record without --yes, stdin not a terminal",
         steps(write("modelfunc.yaml", CONFIG), write("samples/input.json", SAMPLE)),
         ["sample", "record", "{repo}"],
         "error: --yes: is required when stdin is not a terminal: nothing was written"),
    case("aml-sample-record-without-sample", "sample record with no sample input",
         write("modelfunc.yaml", CONFIG), ["sample", "record", "{repo}", "--yes"],
         "error: <repo>/modelfunc.yaml: samples.input: 'samples/input.json' does not exist"),
]


def _row(param) -> tuple[str, str, str, str, str]:  # noqa: ANN001
    bad: Bad = param.values[0]
    shown = "modelfunc " + " ".join(a.replace("{repo}", "<repo>") for a in bad.args)
    return (MIGRATION, param.id, f"{bad.what}: {shown}", f"exit {bad.code}: " + " … ".join(bad.expect),
            f"test_migration.py::test_bad_migration_input[{param.id}]")


# (area, case id, what is wrong, the message the user sees, the test): rows of docs/bad-inputs.md.
ROWS: list[tuple[str, str, str, str, str]] = [_row(p) for p in CASES]
