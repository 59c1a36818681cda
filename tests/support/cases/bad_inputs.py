"""The broken model repos render/test_bad_inputs.py packages, also rows of docs/bad-inputs.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.repo_steps import BLOB, HTTP, SB, Step, delete, replace, steps, write, write_bytes


@dataclass(frozen=True)
class Bad:
    example: str
    breaks: Step
    # Substrings stderr must contain; "<repo>" and "<tmp>" stand for the repo and the test's tmp dir.
    expect: tuple[str, ...]
    # Where --out points, from (tmp, repo); default <tmp>/out.
    out: Callable[[Path, Path], Path] | None = None
    code: int = 2


def case(id_: str, example: str, breaks: Step, *expect: str,
         out: Callable[[Path, Path], Path] | None = None, code: int = 2):  # noqa: ANN201
    return pytest.param(Bad(example, breaks, expect, out, code), id=id_)


SCORE_RAW_AND_SCHEMA = '''\
"""Both decorators: the check is static, so these imports never have to resolve."""
from not_installed_anywhere import input_schema, rawhttp


def init():
    pass


@rawhttp
@input_schema("data", None)
def run(data):
    return data
'''


CASES = [
    # ---------------------------------------------------------------- modelfunc.yaml
    case("config-missing", HTTP, delete("modelfunc.yaml"),
         "error: <repo>/modelfunc.yaml: not found",
         "hint: create modelfunc.yaml in the model repo, e.g.\n    trigger: blob"),
    case("config-yaml-syntax-error", HTTP, replace("modelfunc.yaml", "  route: score", "   route: score"),
         "error: <repo>/modelfunc.yaml:5: modelfunc.yaml is not valid YAML: mapping values are not allowed here "
         "(column 9)",
         "hint: check the indentation and that every 'key: value' has a space after the colon"),
    case("config-yaml-unclosed-bracket", HTTP, replace("modelfunc.yaml", "[GET, POST]", "[GET, POST"),
         "error: <repo>/modelfunc.yaml:7: modelfunc.yaml is not valid YAML: expected ',' or ']'"),
    case("config-is-a-list", HTTP, write("modelfunc.yaml", "- trigger: http\n"),
         "error: <repo>/modelfunc.yaml: must be a YAML mapping (key: value lines), got list",
         "hint: the smallest valid file is one line: trigger: http"),
    case("config-empty", HTTP, write("modelfunc.yaml", ""),
         "error: <repo>/modelfunc.yaml: is empty",
         "hint: the smallest valid file is one line: trigger: http"),
    case("config-not-utf8", HTTP, write_bytes("modelfunc.yaml", b"trigger: \xff\xfehttp\n"),
         "error: <repo>/modelfunc.yaml: modelfunc.yaml is not UTF-8 text"),
    case("config-unknown-top-level-field-typo", HTTP, replace("modelfunc.yaml", "trigger:", "trigers:"),
         "error: <repo>/modelfunc.yaml:2: trigers: unknown field 'trigers' (did you mean 'trigger'?); "
         "allowed here: cache, entry_script, environment, model_dir, model_files, name, python_pin, python_version, "
         "samples, trigger",
         "\n  modelfunc.yaml: trigger: is required but missing"),
    case("config-several-errors-at-once", HTTP,
         write("modelfunc.yaml", "trigger:\n  type: http\n  auth_level: public\n  route: /score\n"
                                 "samples:\n  tolerance: -1\n"),
         "error: <repo>/modelfunc.yaml:3: trigger.auth_level: 'public' is not allowed; "
         "use one of: anonymous, function or admin",
         "\n  modelfunc.yaml:4: trigger.route: '/score' is not a valid route",
         "\n  modelfunc.yaml:6: samples.tolerance: input should be greater than or equal to 0 (got -1)"),
    case("trigger-unknown-type", HTTP, replace("modelfunc.yaml", "type: http", "type: timer"),
         "error: <repo>/modelfunc.yaml:3: trigger.type: 'timer' is not a trigger type; "
         "use one of: http, blob, service-bus-queue"),
    case("trigger-shorthand-unknown-type", HTTP, write("modelfunc.yaml", "trigger: queue\n"),
         "error: <repo>/modelfunc.yaml:1: trigger.type: 'queue' is not a trigger type; "
         "use one of: http, blob, service-bus-queue"),
    case("trigger-without-type", HTTP, write("modelfunc.yaml", "trigger:\n  route: score\n"),
         "error: <repo>/modelfunc.yaml:1: trigger.type: is missing; use one of: http, blob, service-bus-queue"),
    case("trigger-not-a-mapping", HTTP, write("modelfunc.yaml", "trigger: 5\n"),
         "error: <repo>/modelfunc.yaml:1: trigger: must be a mapping of fields, got int 5"),
    case("http-bad-auth-level", HTTP, replace("modelfunc.yaml", "auth_level: function", "auth_level: public"),
         "error: <repo>/modelfunc.yaml:4: trigger.auth_level: 'public' is not allowed; "
         "use one of: anonymous, function or admin"),
    case("http-unknown-field-in-trigger", HTTP, replace("modelfunc.yaml", "methods: [GET, POST]", "method: [POST]"),
         "error: <repo>/modelfunc.yaml:6: trigger.method: unknown field 'method' (did you mean 'methods'?); "
         "allowed here: auth_level, methods, route, type"),
    case("http-bad-method", HTTP, replace("modelfunc.yaml", "[GET, POST]", "[GET, FETCH]"),
         "error: <repo>/modelfunc.yaml:6: trigger.methods.1: 'FETCH' is not allowed; "
         "use one of: GET, POST, PUT, PATCH, DELETE or OPTIONS"),
    case("http-route-with-leading-slash", HTTP, replace("modelfunc.yaml", "route: score", "route: /score"),
         "error: <repo>/modelfunc.yaml:5: trigger.route: '/score' is not a valid route: use a path without "
         "leading/trailing '/', spaces, '?', '#' or '{}', e.g. 'score' (served at /api/score)"),
    case("http-route-is-the-openapi-route", HTTP, replace("modelfunc.yaml", "route: score", "route: Swagger.json"),
         "error: <repo>/modelfunc.yaml:5: trigger.route: 'Swagger.json' is the route of the app's OpenAPI document "
         "(GET /api/swagger.json, which modelfunc adds to every HTTP app, as Azure ML serves /swagger.json): use "
         "another route for run(), e.g. 'score'"),
    case("blob-input-path-without-blobname", BLOB,
         replace("modelfunc.yaml", "input_path: input/{blobname}.json", "input_path: input/{name}.json"),
         "error: <repo>/modelfunc.yaml:5: trigger.input_path: 'input/{name}.json' must contain {blobname}, "
         "e.g. 'input/{blobname}.json'"),
    case("blob-input-path-without-container", BLOB,
         replace("modelfunc.yaml", "input_path: input/{blobname}.json", "input_path: '{blobname}.json'"),
         "error: <repo>/modelfunc.yaml:5: trigger.input_path: '{blobname}.json' has no container: "
         "write it as 'container/blob-pattern', e.g. 'input/{blobname}.json'"),
    case("blob-uppercase-container", BLOB,
         replace("modelfunc.yaml", "input_path: input/{blobname}.json", "input_path: Input_Data/{blobname}.json"),
         "error: <repo>/modelfunc.yaml:5: trigger.input_path: container name 'Input_Data' is invalid: use 3-63 "
         "characters of lowercase letters, digits and single hyphens, starting and ending with a letter or "
         "digit (e.g. 'input')"),
    case("blob-output-uses-unknown-placeholder", BLOB,
         replace("modelfunc.yaml", "output_path: output/{blobname}_out.json",
                 "output_path: output/{date}/{blobname}_out.json"),
         "error: <repo>/modelfunc.yaml:6: trigger.output_path: 'output/{date}/{blobname}_out.json' uses {date}, "
         "which input_path does not define; available: {blobname}"),
    case("blob-output-retriggers-input", BLOB,
         replace("modelfunc.yaml", "output_path: output/{blobname}_out.json", "output_path: input/{blobname}_out.json"),
         "error: <repo>/modelfunc.yaml:6: trigger.output_path: 'input/{blobname}_out.json' can match input_path "
         "'input/{blobname}.json': its blobs would trigger the function again; write them to another "
         "container, e.g. 'output/{blobname}_out.json'"),
    case("blob-output-retriggers-input-with-prefix", BLOB,
         steps(replace("modelfunc.yaml", "input_path: input/{blobname}.json", "input_path: input/a{blobname}.json"),
               replace("modelfunc.yaml", "output_path: output/{blobname}_out.json",
                       "output_path: input/{blobname}.json")),
         "error: <repo>/modelfunc.yaml:6: trigger.output_path: 'input/{blobname}.json' can match input_path "
         "'input/a{blobname}.json'"),
    case("blob-error-path-same-as-output", BLOB,
         replace("modelfunc.yaml", "  connection: TriggerConnectionString",
                 "  connection: TriggerConnectionString\n  error_path: output/{blobname}_out.json"),
         "error: <repo>/modelfunc.yaml:8: trigger.error_path: 'output/{blobname}_out.json' is also the "
         "output_path; error records need their own path"),
    case("blob-bad-connection-setting-name", BLOB,
         replace("modelfunc.yaml", "connection: TriggerConnectionString", "connection: 1bad-name"),
         "error: <repo>/modelfunc.yaml:7: trigger.connection: '1bad-name' is not a valid app setting name: "
         "use letters, digits and underscores, e.g. 'TriggerConnectionString'"),
    case("servicebus-same-input-and-output-queue", SB,
         replace("modelfunc.yaml", "output_queue: scoring-results", "output_queue: scoring-requests"),
         "error: <repo>/modelfunc.yaml:5: trigger.output_queue: 'scoring-requests' is also the input_queue: "
         "every result would be scored again; use another queue"),
    case("servicebus-same-queue-other-case", SB,
         replace("modelfunc.yaml", "output_queue: scoring-results", "output_queue: Scoring-Requests"),
         "error: <repo>/modelfunc.yaml:5: trigger.output_queue: 'Scoring-Requests' is also the input_queue"),
    case("servicebus-queues-missing", SB, write("modelfunc.yaml", "trigger: service-bus-queue\n"),
         "error: <repo>/modelfunc.yaml:1: trigger.input_queue: is required but missing",
         "\n  modelfunc.yaml:1: trigger.output_queue: is required but missing"),
    case("bad-python-version", HTTP,
         replace("modelfunc.yaml", "name: diabetes-http\n", "name: diabetes-http\npython_version: '3.9'\n"),
         "error: <repo>/modelfunc.yaml:2: python_version: '3.9' is not allowed; use one of: 3.10, 3.11, 3.12 or 3.13"),
    case("negative-tolerance", HTTP, replace("modelfunc.yaml", "tolerance: 1.0e-4", "tolerance: -0.1"),
         "error: <repo>/modelfunc.yaml:8: samples.tolerance: input should be greater than or equal to 0 (got -0.1)"),
    case("tolerance-not-a-number", HTTP, replace("modelfunc.yaml", "tolerance: 1.0e-4", "tolerance: small"),
         "error: <repo>/modelfunc.yaml:8: samples.tolerance: input should be a valid number, unable to parse "
         "string as a number (got 'small')"),
    case("bad-app-name", HTTP, replace("modelfunc.yaml", "name: diabetes-http", "name: diabetes_http!"),
         "error: <repo>/modelfunc.yaml:1: name: 'diabetes_http!' is not a valid app name: 2-60 letters, digits "
         "and hyphens, not starting or ending with a hyphen, e.g. 'diabetes-scorer'"),
    # ---------------------------------------------------------------- score.py
    case("score-missing", HTTP, delete("score.py"),
         "error: <repo>/modelfunc.yaml: entry_script: 'score.py' does not exist",
         "hint: the AML entry script defining init() and run(data)"),
    case("score-without-init", BLOB, replace("score.py", "def init():", "def setup():"),
         "error: <repo>/score.py: does not define init() at module level",
         "hint: an AML entry script has def init(): (load the model once) and def run(data): (score one input)"),
    case("score-without-run", BLOB, replace("score.py", "def run(data):", "def predict(data):"),
         "error: <repo>/score.py: does not define run() at module level",
         "hint: an AML entry script has def init():"),
    case("run-star-args", BLOB, replace("score.py", "def run(data):", "def run(*args):"),
         "error: <repo>/score.py:17: run() cannot accept positional-only arguments, *args or **kwargs "
         "(found *args)",
         "hint: name each input, e.g. def run(data):"),
    case("run-star-kwargs", BLOB, replace("score.py", "def run(data):", "def run(data, **kwargs):"),
         "error: <repo>/score.py:17: run() cannot accept positional-only arguments, *args or **kwargs "
         "(found **kwargs)"),
    case("run-without-parameter", BLOB, replace("score.py", "def run(data):", "def run():"),
         "error: <repo>/score.py:17: run() needs a parameter for the input data", "hint: e.g. def run(data):"),
    case("run-async", BLOB, replace("score.py", "def run(data):", "async def run(data):"),
         "error: <repo>/score.py:17: run() must be a plain function, not async def"),
    case("run-rawhttp-and-input-schema", HTTP, write("score.py", SCORE_RAW_AND_SCHEMA),
         "error: <repo>/score.py:11: run() cannot be decorated with both @rawhttp and @input_schema",
         "hint: use @rawhttp to read the request yourself, or @input_schema to get typed arguments"),
    case("score-syntax-error", BLOB, replace("score.py", "def run(data):", "def run(data)"),
         "error: <repo>/score.py:17: has a syntax error: expected ':'"),
    case("score-local-module-syntax-error", BLOB,
         steps(replace("score.py", "import json\n", "import json\nimport helper\n"), write("helper.py", "def f(:\n")),
         "error: <repo>/helper.py:1: has a syntax error"),
    case("score-module-named-function_app", BLOB,
         steps(replace("score.py", "import json\n", "import json\nimport function_app\n"),
               write("function_app.py", "X = 1\n")),
         "error: <repo>/function_app.py: a file named 'function_app.py' beside the entry script would be shipped in "
         "place of the app's own function_app.py, which modelfunc writes",
         "hint: rename it, or leave it out of the app: add the line /function_app.py to .amlignore beside score.py"),
    case("score-folder-beside-named-model", HTTP,
         steps(write("artifacts/model.json", "{}\n"), write("model/notes.txt", "old weights\n"),
               replace("modelfunc.yaml", "name: diabetes-http\n", "name: diabetes-http\nmodel_dir: artifacts\n")),
         "error: <repo>/model: a folder named 'model' beside the entry script would be shipped where the app keeps "
         "the model files (model_dir is 'artifacts')",
         "hint: rename it, or leave it out of the app: add the line /model/ to .amlignore beside score.py"),
    case("score-folder-swagger-json-not-json", HTTP, write("swagger.json", "{'swagger': '2.0'}\n"),
         "error: <repo>/swagger.json: swagger.json beside the entry script is served as the app's OpenAPI document, "
         "as azmlinfsrv serves it, but it is not valid JSON (Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1))",
         "hint: fix it; or delete it (or add the line /swagger.json to .amlignore beside score.py) to serve the "
         "document modelfunc generates"),
    case("entry-script-left-out-by-amlignore", BLOB, write(".amlignore", "*.py\n"),
         "error: <repo>/score.py: the entry script is left out of the app by .amlignore",
         "hint: remove the pattern that matches score.py from .amlignore"),
    case("score-not-utf8", BLOB, write_bytes("score.py", b"def init():\n    pass\n# \xff\xfe\n"),
         "error: <repo>/score.py: is not UTF-8 text"),
    # ---------------------------------------------------------------- environment.yml / requirements.txt
    case("env-yaml-syntax-error", BLOB, replace("environment.yml", "  - numpy>=1.26", " - numpy>=1.26"),
         "error: <repo>/environment.yml:6: environment.yml is not valid YAML: expected <block end>, "
         "but found '<block sequence start>' (column 2)",
         "hint: check the indentation"),
    case("env-without-dependencies", BLOB, write("environment.yml", "name: x\nchannels:\n  - conda-forge\n"),
         "error: <repo>/environment.yml: dependencies: has no 'dependencies:' list",
         "hint: list the packages score.py needs under dependencies:"),
    case("env-dependencies-not-a-list", BLOB, write("environment.yml", "name: x\ndependencies: numpy\n"),
         "error: <repo>/environment.yml:2: dependencies: must be a list, got str"),
    case("env-is-a-list", BLOB, write("environment.yml", "- numpy\n"),
         "error: <repo>/environment.yml: must be a conda environment mapping with a 'dependencies:' list"),
    case("env-invalid-pip-requirement", HTTP, replace("environment.yml", "- numpy>=1.26", "- numpy>>1"),
         "error: <repo>/environment.yml:5: dependencies[1].pip[0]: 'numpy>>1' is not a valid pip requirement",
         "hint: write it as name, name==1.2.3 or name>=1.2"),
    case("env-invalid-pip-requirement-triple-equals", HTTP, replace("environment.yml", "- numpy>=1.26", "- numpy===!1"),
         "error: <repo>/environment.yml:5: dependencies[1].pip[0]: 'numpy===!1'"),
    case("env-invalid-conda-spec", BLOB, replace("environment.yml", "- numpy>=1.26", "- numpy>=1.26 <2 ,x"),
         "error: <repo>/environment.yml:6: dependencies[1]: 'numpy>=1.26 <2 ,x' is not a conda package spec",
         "hint: write it as name, name=1.2 or name>=1.2"),
    case("env-conda-spec-error-quotes-what-was-written", BLOB,
         replace("environment.yml", "- numpy>=1.26", "- numpy=>1.26"),
         "error: <repo>/environment.yml:6: dependencies[1]: 'numpy=>1.26'"),
    case("env-pins-python-3.8", BLOB, replace("environment.yml", "python=3.11", "python=3.8"),
         "error: <repo>/environment.yml:5: dependencies[0]: pins python 3.8, but the app targets Python 3.11",
         "hint: use python=3.11 here, or set python_version in modelfunc.yaml"),
    case("env-pip-dash-r", HTTP, replace("environment.yml", "- numpy>=1.26", "- -r other.txt"),
         "error: <repo>/environment.yml:5: dependencies[1].pip[0]: '-r other.txt' is not supported: "
         "the app is built from a single requirements list",
         "hint: list the packages themselves instead of -r/-e/-c lines"),
    case("env-pip-url", HTTP, replace("environment.yml", "- numpy>=1.26", "- git+https://example.org/x/y"),
         "error: <repo>/environment.yml:5: dependencies[1].pip[0]: 'git+https://example.org/x/y' refers to a URL "
         "or local path"),
    case("env-dependency-not-a-string", BLOB, replace("environment.yml", "- numpy>=1.26", "- 42"),
         "error: <repo>/environment.yml:6: dependencies[1]: 42 is neither a package spec nor a 'pip:' list"),
    case("env-and-requirements-missing", BLOB, delete("environment.yml"),
         "error: <repo>/modelfunc.yaml: environment: no environment.yml or requirements.txt in the model repo",
         "hint: add environment.yml (conda format with a pip: section) or requirements.txt"),
    case("env-named-file-missing", BLOB,
         replace("modelfunc.yaml", "name: diabetes-blob\n", "name: diabetes-blob\nenvironment: env/conda.yml\n"),
         "error: <repo>/modelfunc.yaml:3: environment: 'env/conda.yml' does not exist"),
    case("requirements-dash-r", BLOB,
         steps(delete("environment.yml"), write("requirements.txt", "numpy>=1.26\n# shared pins\n-r base.txt\n")),
         "error: <repo>/requirements.txt:3: requirements: '-r base.txt' is not supported",
         "hint: list the packages themselves instead of -r/-e/-c lines"),
    case("requirements-not-utf8", BLOB,
         steps(delete("environment.yml"), write_bytes("requirements.txt", b"numpy\n# caf\xe9\n")),
         "error: <repo>/requirements.txt", "UTF-8"),
    # ---------------------------------------------------------------- samples, model, paths
    case("samples-input-missing", BLOB, delete("samples/input.json"),
         "error: <repo>/modelfunc.yaml:9: samples.input: 'samples/input.json' does not exist",
         "hint: a sample request body / input blob"),
    case("samples-expected-not-json", BLOB, write("samples/expected.json", "[661.6371,\n 362.4341\n"),
         "error: <repo>/samples/expected.json:3: is not valid JSON: Expecting ',' delimiter",
         "hint: samples.expected must hold the JSON the model returns for samples.input"),
    case("model-dir-missing", BLOB, delete("model"),
         "error: <repo>/modelfunc.yaml: model_dir: 'model' does not exist or is not a directory",
         "hint: put the model files in a folder, e.g. model/"),
    case("model-dir-is-a-file", BLOB, steps(delete("model"), write("model", "weights")),
         "error: <repo>/modelfunc.yaml: model_dir: 'model' does not exist or is not a directory"),
    case("entry-script-outside-repo", BLOB,
         steps(write("../x.py", "def init():\n    pass\n\n\ndef run(data):\n    return data\n"),
               replace("modelfunc.yaml", "name: diabetes-blob\n", "name: diabetes-blob\nentry_script: ../x.py\n")),
         "error: <repo>/modelfunc.yaml:3: entry_script: '../x.py' points outside the model repo"),
    # ---------------------------------------------------------------- --out
    case("out-is-the-repo", HTTP, lambda repo: None,
         "error: output directory <repo> would contain the model repo itself",
         "hint: use a sub-directory such as build/",
         out=lambda tmp, repo: repo),
    case("out-is-above-the-repo", HTTP, lambda repo: None,
         "error: output directory <tmp> would contain the model repo itself",
         out=lambda tmp, repo: tmp),
    case("out-is-the-model-dir", HTTP, lambda repo: None,
         "error: output directory <repo>/model overlaps <repo>/model, which is copied into the app",
         "hint: use a directory outside it, such as build/ in the model repo",
         out=lambda tmp, repo: repo / "model"),
    case("out-inside-the-model-dir", HTTP, lambda repo: None,
         "error: output directory <repo>/model/build", "overlaps",
         out=lambda tmp, repo: repo / "model" / "build"),
    case("out-is-a-foreign-directory", HTTP, write("../mine/notes.txt", "keep me\n"),
         "error: output directory <tmp>/mine exists and was not written by modelfunc; refusing to replace it",
         "hint: choose another --out, or remove it yourself",
         out=lambda tmp, repo: tmp / "mine"),
    case("out-below-a-file", HTTP, write("../file.txt", "not a directory\n"),
         "error: ", "<tmp>/file.txt",
         out=lambda tmp, repo: tmp / "file.txt" / "out"),
]
