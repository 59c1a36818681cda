"""The app's OpenAPI (swagger) document, GET /api/swagger.json (docs/openapi.md).

* Served by the real `modelfunc serve` for three styles of score.py (inference-schema, undecorated, @rawhttp) and the
  three auth levels; every version it serves is validated with openapi-spec-validator, and its paths, methods and
  security are the functions the azure-functions library indexes from the generated function_app.py.
* The scoring endpoint of the inference-schema example (examples/diabetes-http) is driven from the served document by
  schemathesis: schema-valid inputs never get a server error, and every answer conforms to the document.
* The document's own example, sent as it is, gets the expected answer.
* Compared with Azure ML's own server, azmlinfsrv (azureml-inference-server-http 1.5.1, in .venv-aml, started by
  tests/support/conformance/harness.py's fork servers; the catalogue's scripts are the conformance run's own servers,
  asked for the documents first: tests/support/conformance/shared.py), on the conformance catalogue's entry scripts:
  ServiceInput and ServiceOutput equal for versions 2, 3 and 3.1, the same versions served (404 with the same message
  on the others), a user's swagger*.json served as it is by both, and every other difference one of DIFFERENCES below
  (generated into docs/openapi.md: ``PYTHONPATH=tests .venv/bin/python tests/host/test_openapi.py --write``).

Facts taken from azmlinfsrv cite its file, relative to
.venv-aml/lib/python3.11/site-packages/azureml_inference_server_http/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.conformance import shared
from support.conformance.catalogue import BY_NAME
from support.conformance.harness import (
    Run,
    Zygote,
    _free_port,
    _http_ok,
    _reap,
    _signal,
    _wait,
    oracle_python,
    write_repo,
)
from support.conformance.harness import fetch_document as fetch
from support.conformance.shared import DECORATED, NOT_VERSIONS, QUERIES, UNDECORATED, VERSIONS
from support.core import EXAMPLES, FIXTURES, ROOT, Hosts, copy_example, hosts_side_by_side, run_modelfunc
from support.docs import check_generated_block, write_generated_block

DOC = ROOT / "docs" / "openapi.md"
START, END = "<!-- openapi-differences:start -->", "<!-- openapi-differences:end -->"
WRITE = "PYTHONPATH=tests .venv/bin/python tests/host/test_openapi.py --write"
# The oracle's pairs come from the conformance run shared with test_conformance.py (support/conformance/shared.py):
# one worker runs both modules.
pytestmark = shared.MODULE_MARKS

# VERSIONS: every ?version= azmlinfsrv takes (support/conformance/shared.py); NOT_VERSIONS: some it refuses.
DECLARED = {"2": ("swagger", "2.0"), "2.0": ("swagger", "2.0"), "3": ("openapi", "3.0.3"),
            "3.0": ("openapi", "3.0.3"), "3.1": ("openapi", "3.1.0")}  # server/swagger*_template.json, Swagger31Builder
DIABETES_SAMPLE = json.loads((EXAMPLES / "diabetes-http" / "samples" / "input.json").read_text())
DIABETES_EXPECTED = json.loads((EXAMPLES / "diabetes-http" / "samples" / "expected.json").read_text())
ENV = ("dependencies:\n  - python=3.11\n  - pip:\n      - numpy\n      - inference-schema[numpy-support]\n"
       "      - azureml-contrib-services\n")


def schemas_of(doc: dict[str, Any]) -> dict[str, Any]:
    """ServiceInput, ServiceOutput, ErrorResponse: `definitions` in swagger 2, `components.schemas` in OpenAPI 3."""
    return doc["definitions"] if "swagger" in doc else doc["components"]["schemas"]


# ------------------------------------------------------------------------------------------------ served apps


@dataclass(frozen=True)
class App:
    score: str  # the entry script
    auth_level: str
    methods: tuple[str, ...]
    style: str  # what the runtime calls it: schema | json | rawhttp


APPS = {
    "decorated": App(str(EXAMPLES / "diabetes-http" / "score.py"), "function", ("GET", "POST"), "schema"),
    "undecorated": App(str(EXAMPLES / "diabetes-blob" / "score.py"), "admin", ("GET", "POST"), "json"),
    "rawhttp": App(str(FIXTURES / "styles" / "rawhttp.py"), "anonymous", ("GET", "POST", "PUT", "OPTIONS"),
                   "rawhttp"),
}


def app_repo(parent: Path, name: str) -> Path:
    """The diabetes-http example with the app's entry script, auth level and methods."""
    app = APPS[name]
    repo = copy_example("diabetes-http", parent)
    repo = repo.rename(parent / name)
    if Path(app.score) != repo / "score.py":
        (repo / "score.py").write_text(Path(app.score).read_text())
    (repo / "environment.yml").write_text(ENV)
    (repo / "modelfunc.yaml").write_text(
        f"name: openapi-{name}\ntrigger:\n  type: http\n  auth_level: {app.auth_level}\n  route: score\n"
        f"  methods: [{', '.join(app.methods)}]\nsamples:\n  tolerance: 1.0e-4\n")
    return repo


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The three apps, started side by side."""
    tmp = tmp_path_factory.mktemp("openapi")
    repos = {}
    for name in APPS:
        (tmp / f"repo-{name}").mkdir()
        repos[name] = app_repo(tmp / f"repo-{name}", name)
    with hosts_side_by_side(tmp, repos) as started:
        yield started


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(APPS))
def test_every_served_version_is_a_valid_document(hosts, name: str, version: str) -> None:
    from openapi_spec_validator import validate

    resp = fetch(hosts[name].url, version)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    doc = resp.json()
    key, declared = DECLARED[version]
    assert doc[key] == declared
    validate(doc)  # raises OpenAPIValidationError with the path of what is wrong


def test_validation_is_not_vacuous() -> None:
    """The validator refuses a document shaped like ours with one mistake (so the test above can fail)."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    broken = {"openapi": "3.0.3", "info": {"title": "x", "version": "1"},
              "paths": {"/api/score": {"post": {"responses": {"200": {"description": "ok", "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}}}}}}},
              "components": {"schemas": {"ServiceOutput": {"type": "array", "items": "number"}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


@pytest.mark.parametrize("name", sorted(APPS))
def test_no_version_is_version_2(hosts, name: str) -> None:
    default, two = fetch(hosts[name].url, None), fetch(hosts[name].url, "2")
    assert default.status_code == two.status_code == 200
    assert default.json() == two.json()
    assert default.json()["swagger"] == "2.0"


@pytest.mark.parametrize("version", NOT_VERSIONS)
def test_an_unknown_version_is_404_with_azmlinfsrvs_message(hosts, version: str) -> None:
    resp = fetch(hosts["decorated"].url, version)
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/json"
    # server/swagger.py Swagger.get_swagger: the message lists the builders' versions, sorted
    assert resp.json() == {"message": f"Swagger version [{version}] is not valid. Supported versions: [2, 3, 3.1]."}


def test_the_swagger_route_is_routed_as_the_functions_host_routes_it(hosts) -> None:
    url = hosts["decorated"].url
    slash = httpx.get(f"{url}/api/swagger.json/", params={"version": "3"}, timeout=10)
    assert slash.status_code == 200 and slash.json()["openapi"] == "3.0.3"  # ASP.NET routing: trailing slash too
    # a repeated parameter: the first, as flask's request.args.get gives azmlinfsrv (server/routes.py)
    first = httpx.get(f"{url}/api/swagger.json?version=3.1&version=2", timeout=10)
    assert first.json()["openapi"] == "3.1.0"
    for method in ("POST", "HEAD", "PUT", "DELETE", "OPTIONS"):  # the function lists GET only: the host's 404
        resp = httpx.request(method, f"{url}/api/swagger.json", timeout=10)
        assert (resp.status_code, resp.content) == (404, b""), method


KEY_SCHEMES = {"functionKey": ("header", "x-functions-key"), "functionKeyQuery": ("query", "code")}


@pytest.mark.parametrize("version", ["2", "3", "3.1"])
@pytest.mark.parametrize("name", sorted(APPS))
def test_paths_methods_and_security_are_the_apps_functions(hosts, name: str, version: str) -> None:
    """What the local host indexed from function_app.py with the azure-functions library (its /admin/functions):
    every HTTP function at /api/<route> with its methods and auth level, and nothing else."""
    url = hosts[name].url
    doc = fetch(url, version).json()
    functions = httpx.get(f"{url}/admin/functions", timeout=10).json()
    indexed = {"/api/" + f["trigger"]["route"]: ({m.lower() for m in f["trigger"]["methods"]},
                                                 f["trigger"]["authLevel"].lower()) for f in functions}
    assert {f["name"] for f in functions} == {"score", "swagger"}
    assert set(doc["paths"]) == set(indexed) == {"/api/score", "/api/swagger.json"}
    schemes = doc.get("securityDefinitions") if version == "2" else doc.get("components", {}).get("securitySchemes")
    for path, (methods, auth) in indexed.items():
        assert set(doc["paths"][path]) == methods, path
        assert auth == APPS[name].auth_level
        for method, op in doc["paths"][path].items():
            if auth == "anonymous":
                assert "security" not in op, (path, method)
            else:
                assert op["security"] == [{"functionKey": []}, {"functionKeyQuery": []}], (path, method)
    if APPS[name].auth_level == "anonymous":
        assert schemes is None
        assert "security" not in doc
    else:
        assert {n: (s["in"], s["name"]) for n, s in schemes.items()} == KEY_SCHEMES
        assert all(s["type"] == "apiKey" for s in schemes.values())
        if APPS[name].auth_level == "admin":
            assert all("master key" in s["description"] for s in schemes.values())


def test_the_function_keys_in_the_document_reach_the_app(hosts) -> None:
    """The local host checks no keys (as `func start` does not); what it must do is pass them on untouched, so the
    request a client builds from the document's security is the one the scoring function gets."""
    url = hosts["decorated"].url
    body = {"data": DIABETES_SAMPLE["data"]}
    header = httpx.post(f"{url}/api/score", json=body, headers={"x-functions-key": "k1"}, timeout=30)
    query = httpx.post(f"{url}/api/score", params={"code": "k1"}, json=body, timeout=30)
    assert header.status_code == query.status_code == 200
    assert header.json() == query.json() == pytest.approx(DIABETES_EXPECTED, abs=1e-4)


def _oas_validator(doc: dict[str, Any]):  # noqa: ANN202 - a jsonschema validator for the document's schemas
    from openapi_schema_validator import OAS30Validator

    return lambda schema: OAS30Validator({**schema, "components": doc["components"]})


def test_undecorated_schemas_are_inferred_from_the_samples(hosts) -> None:
    doc = fetch(hosts["undecorated"].url, "3").json()
    schemas = schemas_of(doc)
    service_input, service_output = schemas["ServiceInput"], schemas["ServiceOutput"]
    assert service_input["example"] == DIABETES_SAMPLE
    assert service_output["example"] == DIABETES_EXPECTED
    assert "samples/input.json" in service_input["description"]
    assert "samples/expected.json" in service_output["description"]
    assert service_input["required"] == ["data"]
    assert service_input["properties"]["data"] == {"type": "array", "items": {
        "type": "array", "items": {"type": "integer", "format": "int64"}}}
    assert service_output["items"] == {"type": "number", "format": "double"}
    validator = _oas_validator(doc)
    assert validator(service_input).is_valid(DIABETES_SAMPLE)
    assert not validator(service_input).is_valid({"rows": DIABETES_SAMPLE["data"]})  # a schema that refuses
    assert not validator(service_input).is_valid({"data": [["1"]]})
    assert validator(service_output).is_valid(DIABETES_EXPECTED)
    # GET passes each query parameter to run(): the sample's keys are its parameters, as JSON
    (parameter,) = doc["paths"]["/api/score"]["get"]["parameters"]
    assert parameter == {"name": "data", "in": "query", "required": True, "content": {"application/json": {
        "schema": {**service_input["properties"]["data"], "example": DIABETES_SAMPLE["data"]}}}}


def _diabetes(rows: list[list[float]]) -> list[float]:
    """The example model (examples/diabetes-http/model/model.json: linear), computed here without numpy."""
    model = json.loads((EXAMPLES / "diabetes-http" / "model" / "model.json").read_text())
    return [round(sum(x * c for x, c in zip(row, model["coef"], strict=True)) + model["intercept"], 4)
            for row in rows]


@pytest.mark.parametrize("version", ["2", "3", "3.1"])
@pytest.mark.parametrize("name", sorted(APPS))
def test_the_documents_example_gets_the_expected_answer(hosts, name: str, version: str) -> None:
    url = hosts[name].url
    doc = fetch(url, version).json()
    schemas = schemas_of(doc)
    body = schemas["ServiceInput"]["example"]
    resp = httpx.post(f"{url}/api/score", content=json.dumps(body), headers={"content-type": "application/json"},
                      timeout=30)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    if name == "decorated":  # inference-schema's example: the decorator's sample, [[0.1] * 10]
        assert body == {"data": [[0.1] * 10]}
        assert answer == pytest.approx(_diabetes(body["data"]), abs=1e-4)
        # the output schema's example is the decorator's sample too, not an answer: only its shape is checked
        assert isinstance(schemas["ServiceOutput"]["example"], list) and len(answer) == len(body["data"])
    else:  # inferred from the samples: the example is samples/input.json and its answer samples/expected.json
        assert body == DIABETES_SAMPLE
        assert answer == pytest.approx(schemas["ServiceOutput"]["example"], abs=1e-4)
        assert schemas["ServiceOutput"]["example"] == DIABETES_EXPECTED
    if version != "2":
        assert _oas_validator(doc)(schemas["ServiceOutput"]).is_valid(answer)
        if name == "decorated":  # the same input as the GET the document describes: a query parameter, as JSON
            (parameter,) = doc["paths"]["/api/score"]["get"]["parameters"]
            assert parameter["required"] is True and "application/json" in parameter["content"]
            get = httpx.get(f"{url}/api/score", params={parameter["name"]: json.dumps(body[parameter["name"]])},
                            timeout=30)
            assert get.status_code == 200, get.text
            assert get.json() == answer


# ------------------------------------------------------------------------- schemathesis on the decorated example


@pytest.mark.parametrize("version", ["2", "3", "3.1"])
def test_schemathesis_drives_the_decorated_example_from_its_document(hosts, version: str) -> None:
    """examples/diabetes-http from the document /api/swagger.json serves: schema-valid inputs (schemathesis'
    positive generation, the document's examples included) never get a 5xx, and every answer conforms to the
    document (status, content type, body schema).

    Inputs are kept within the model's numeric range (no feature above 1e290 in size): a prediction that overflows
    a double is answered as ``[Infinity]``, which is not JSON, and so not the document's array of numbers.
    azmlinfsrv answers the same (Python's json.dumps writes NaN and Infinity; docs/openapi.md, "Known limits";
    tests/support/conformance/scripts/plain_nan.py).
    """
    import schemathesis
    from hypothesis import HealthCheck, assume, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    url = hosts["decorated"].url
    schema = schemathesis.openapi.from_dict(fetch(url, version).json())
    schema.config.update(base_url=url)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    seen: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert sorted(op.label for op in operations) == ["GET /api/score", "GET /api/swagger.json", "POST /api/score"]

    def drive(strategy: Any, label: str, max_examples: int, *, example: bool = False) -> None:
        @given(case=strategy)
        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            assume(_in_range(case))
            response = case.call(timeout=30)
            seen[(label, response.status_code)] += 1
            case.validate_response(response, checks=checks)
            if example:  # the document's own example must be scored
                assert response.status_code == 200, response.text

        check()

    for operation in operations:
        examples = schema.get_strategies_from_examples(operation)
        drive(operation.as_strategy(generation_mode=GenerationMode.POSITIVE), operation.label, 60)
        for example in examples:
            drive(example, operation.label, 1, example=True)
    # the answers checked include scored ones (200, against ServiceOutput) and the runtime's refusals (400)
    for label in ("POST /api/score", "GET /api/score"):
        assert seen[(label, 200)] >= 1 and seen[(label, 400)] >= 1, seen
    assert seen[("GET /api/swagger.json", 200)] >= 1, seen
    assert not [k for k in seen if k[1] >= 500], seen
    print(f"schemathesis on examples/diabetes-http, version {version}: answers {dict(sorted(seen.items()))}")


def _in_range(case: Any) -> bool:
    """Whether every number of a case's ``data`` (the body's, or the query parameter's JSON) is at most 1e290 in size:
    the model's coefficients are below 1e3, so the prediction of such a row cannot overflow a double."""
    data = case.body.get("data") if isinstance(case.body, dict) else (case.query or {}).get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return True

    def numbers(value: Any) -> Iterator[float]:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            yield value
        elif isinstance(value, list):
            for item in value:
                yield from numbers(item)

    return all(abs(x) <= 1e290 for x in numbers(data))


def test_schemathesis_finds_a_run_that_fails_on_schema_valid_input(tmp_path: Path) -> None:
    """The check above can fail: the same example with inference-schema's enforce_shape=False (any row width passes
    the schema) answers 500 for a row of the wrong width, and schemathesis reports it."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup

    repo = copy_example("diabetes-http", tmp_path)
    score = (repo / "score.py").read_text()
    assert score.count("NumpyParameterType(np.array([[0.1] * 10]))") == 1
    (repo / "score.py").write_text(score.replace("NumpyParameterType(np.array([[0.1] * 10]))",
                                                 "NumpyParameterType(np.array([[0.1] * 10]), enforce_shape=False)"))
    pool = Hosts(tmp_path)
    try:
        host = pool.start(repo)
        schema = schemathesis.openapi.from_dict(fetch(host.url, "3").json())
        schema.config.update(base_url=host.url)
        post = schema["/api/score"]["POST"]

        @given(case=post.as_strategy())
        @settings(max_examples=100, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.validate_response(case.call(timeout=30), checks=[not_a_server_error])

        with pytest.raises(FailureGroup, match="Server error"):
            check()
    finally:
        pool.stop_all()


# ---------------------------------------------------------------------------------------- package time


def test_package_infers_the_schemas_without_importing_score_py(tmp_path: Path) -> None:
    repo = copy_example("diabetes-http", tmp_path)
    (repo / "score.py").write_text("raise RuntimeError('score.py was imported')\n\ndef init():\n    pass\n\n\n"
                                   "def run(data):\n    return data\n")
    (repo / "samples" / "input.json").write_text(json.dumps({"rows": [{"a": 1, "b": "x"}, {"a": 2.5}], "k": None}))
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "openapi: GET /api/swagger.json; run() has no inference-schema decorators: input schema inferred from " \
           "samples/input.json; output schema inferred from samples/expected.json" in result.stderr
    description = json.loads((tmp_path / "out" / "app" / "modelfunc_openapi.json").read_text())
    assert description["score"] == {"function": "score", "route": "score", "methods": ["GET", "POST"],
                                    "auth_level": "function"}
    assert description["swagger"] == {"function": "swagger", "route": "swagger.json", "methods": ["GET"],
                                      "auth_level": "function"}
    inferred = description["inferred"]["input"]
    assert inferred.pop("description").startswith("The input of run(), inferred by modelfunc from samples/input.json")
    assert inferred == {
        "type": "object", "required": ["rows", "k"], "properties": {
            # the items' schemas merged: a key in every item is required, an integer and a number are a number
            "rows": {"type": "array", "items": {"type": "object", "required": ["a"], "properties": {
                "a": {"type": "number", "format": "double"}, "b": {"type": "string"}}}},
            "k": {}},  # null: any value
        "example": {"rows": [{"a": 1, "b": "x"}, {"a": 2.5}], "k": None}}


@pytest.mark.parametrize(("value", "schema"), [
    (True, {"type": "boolean"}),
    (7, {"type": "integer", "format": "int64"}),
    ([], {"type": "array", "items": {}}),
    ({}, {"type": "object"}),
    ([1, "a"], {"type": "array", "items": {}}),  # mixed items: any (inference-schema would say string)
    ([[1], [2.5, 3]], {"type": "array", "items": {"type": "array", "items": {"type": "number", "format": "double"}}}),
    ([{"a": [1]}, {"a": []}], {"type": "array", "items": {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "array", "items": {}}}}}),
])
def test_infer_schema(value: Any, schema: dict[str, Any]) -> None:
    from modelfunc.openapi import infer_schema

    assert infer_schema(value) == schema


@pytest.mark.parametrize(("name", "content", "note"), [
    ("input.csv", b"a,b\n1,2\n", "samples/input.csv is not a .json file"),
    ("input.json", b"a,b\n1,2\n", "samples/input.json is not valid JSON"),
])
def test_a_sample_that_is_not_json_gives_azmlinfsrvs_schema(tmp_path: Path, name: str, content: bytes,
                                                             note: str) -> None:
    from modelfunc.config import load_project
    from modelfunc.openapi import sample_schema

    repo = copy_example("diabetes-http", tmp_path)
    (repo / "samples" / name).write_bytes(content)
    project = load_project(repo)
    schema, why = sample_schema(repo / "samples" / name, f"samples/{name}", "The input")
    # server/swagger.py _SwaggerBuilder._generate_swagger: an undecorated run() gets this for both schemas
    assert schema == {"type": "object", "example": {}}
    assert why.startswith(note)
    assert project.sample_input.name == "input.json"


def test_a_nan_sample_gives_its_schema_without_an_example(tmp_path: Path) -> None:
    from modelfunc.openapi import sample_schema

    (tmp_path / "s.json").write_text('{"x": [1.5, NaN]}')
    schema, why = sample_schema(tmp_path / "s.json", "s.json", "The input")
    assert "example" not in schema and "NaN" in why
    assert schema["properties"]["x"] == {"type": "array", "items": {"type": "number", "format": "double"}}


def test_non_http_apps_have_no_document(tmp_path: Path) -> None:
    repo = copy_example("diabetes-blob", tmp_path)
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    app = tmp_path / "out" / "app"
    assert not (app / "modelfunc_openapi.py").exists() and not (app / "modelfunc_openapi.json").exists()
    assert "swagger" not in (app / "function_app.py").read_text()
    assert "openapi:" not in result.stderr


def test_handle_openapi_reads_a_users_files_as_azmlinfsrv_does(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The runtime in this process, on a packaged app: an empty swagger.json is passed over for swagger2.json
    (server/swagger.py Swagger2Builder._read_user_swagger), and a file that is not JSON (put there after `package`,
    which refuses it) is a 500 naming it: azmlinfsrv does not start with one."""
    import azure.functions as func
    from modelfunc.runtime.modelfunc_runtime import EntryScript

    monkeypatch.setenv("AZUREML_MODEL_DIR", "")  # EntryScript sets it; restored after the test
    monkeypatch.setenv("SERVICE_NAME", "diabetes scorer")  # app settings azmlinfsrv reads too (server/config.py)
    monkeypatch.setenv("SERVICE_VERSION", "7.1")
    repo = copy_example("diabetes-http", tmp_path)
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    app = tmp_path / "out" / "app"
    (app / "swagger.json").write_text("{}")
    (app / "swagger2.json").write_text(json.dumps(MINE_2))
    entry = EntryScript(app / "score.py", model_dir=app / "model")

    def get(query: str) -> func.HttpResponse:
        return entry.handle_openapi(func.HttpRequest("GET", f"http://localhost/api/swagger.json{query}", body=b""))

    for query in ("", "?version=2.0"):
        resp = get(query)
        assert resp.status_code == 200 and json.loads(resp.get_body()) == MINE_2
        assert resp.headers["content-type"] == "application/json"
    generated = json.loads(get("?version=3.1").get_body())
    assert generated["openapi"] == "3.1.0"
    assert (generated["info"]["title"], generated["info"]["version"]) == ("diabetes scorer", "7.1")
    (app / "swagger3.json").write_text("{'openapi': '3.0.3'}")
    broken = EntryScript(app / "score.py", model_dir=app / "model")  # documents are built once per app start
    resp = broken.handle_openapi(func.HttpRequest("GET", "http://localhost/api/swagger.json?version=2", body=b""))
    assert resp.status_code == 500
    assert json.loads(resp.get_body())["message"].startswith(
        "swagger3.json beside the entry script is not valid JSON (Expecting property name enclosed in double quotes")


def test_the_two_functions_never_share_a_name_or_a_route() -> None:
    from modelfunc.appgen import RESERVED
    from modelfunc.openapi import SWAGGER_FUNCTION, SWAGGER_ROUTE
    from modelfunc.triggers import FUNCTION_NAMES, HttpTrigger

    assert SWAGGER_FUNCTION not in FUNCTION_NAMES.values()
    assert {"modelfunc_openapi.py", "modelfunc_openapi.json"} <= RESERVED
    for route in (SWAGGER_ROUTE, SWAGGER_ROUTE.upper(), "Swagger.Json"):  # the host matches routes in any case
        with pytest.raises(ValueError, match="is the route of the app's OpenAPI document"):
            HttpTrigger(type="http", route=route)
    assert HttpTrigger(type="http", route="models/swagger.json").route == "models/swagger.json"


# -------------------------------------------------------------------------------------------- the oracle

ORACLE = oracle_python()
needs_oracle = pytest.mark.skipif(
    ORACLE is None, reason="azmlinfsrv is not installed: `make .venv-aml/.installed` creates its venv")


# DECORATED: the catalogue's scripts with inference-schema decorators; UNDECORATED: a JSON sample, a CSV one, @rawhttp
# (support/conformance/shared.py: their conformance runs ask both servers for the documents first).

# A user's documents beside the entry script: served as they are (server/swagger.py _read_user_swagger).
MINE_2 = {"swagger": "2.0", "info": {"title": "mine", "version": "7"}, "paths": {}}
MINE_3 = {"openapi": "3.0.3", "info": {"title": "mine", "version": "7"}, "paths": {}}
MINE_31 = {"openapi": "3.1.0", "info": {"title": "mine", "version": "7"}, "paths": {}}


@dataclass(frozen=True)
class Variant:
    name: str
    script: str
    files: dict[str, Any] = field(default_factory=dict)


VARIANTS = [Variant(n, n) for n in DECORATED + UNDECORATED] + [
    Variant("user_documents", "plain_dict", {"swagger.json": MINE_2, "swagger3.json": MINE_3,
                                             "swagger3.1.json": MINE_31}),
    # swagger2.json makes version 2 served where inference-schema cannot describe run() (its split orient's rows mix
    # integers and floats); an empty swagger3.1.json is passed over: the generated document is served
    Variant("user_documents_split", "schema_pandas_split", {"swagger2.json": MINE_2, "swagger3.1.json": {}}),
]


@dataclass
class Pair:
    variant: Variant
    answers: dict[str | None, tuple[httpx.Response, httpx.Response]]  # ?version= → (azmlinfsrv, modelfunc)
    logs: dict[str, str]


def _run_pair(variant: Variant, work: Path, zygotes: dict[str, Zygote]) -> tuple[Pair | str, list[int]]:
    script = BY_NAME[variant.script]
    repo = write_repo(script, work / variant.name)
    for name, document in variant.files.items():
        (repo / name).write_text(json.dumps(document))
    port = _free_port()
    ready = work / f"{variant.name}.ready.json"
    logs = {"azmlinfsrv": work / f"{variant.name}.azmlinfsrv.log", "modelfunc": work / f"{variant.name}.modelfunc.log"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MODELFUNC_CONNECTION"))}
    # AML_APP_ROOT: where azmlinfsrv reads a user's swagger*.json (server/config.py app_root, default /var/azureml-app;
    # server/aml_blueprint.py passes it to Swagger): the entry script's folder, as in a modelfunc app.
    oracle_env = {**env, "AZUREML_MODEL_DIR": str(repo / "model"), "AML_APP_ROOT": str(repo),
                  "GUNICORN_CMD_ARGS": "--no-control-socket", "PYTHONUNBUFFERED": "1"}
    az = zygotes["azmlinfsrv"].spawn(["azmlinfsrv", "--entry_script", str(repo / "score.py"), "--port", str(port),
                                      "--worker_count", "1"], cwd=repo, env=oracle_env, log=logs["azmlinfsrv"])
    mf = zygotes["modelfunc"].spawn(["modelfunc", "serve", str(repo), "--port", "0", "--ready-file", str(ready),
                                     "--no-azurite"], cwd=repo, env={**env, "PYTHONUNBUFFERED": "1"},
                                    log=logs["modelfunc"])
    try:
        az_base = f"http://127.0.0.1:{port}"
        if not (_wait(az, _http_ok(f"{az_base}/"), 90) and _wait(mf, ready.exists, 90)):
            return (f"{variant.name}: a server did not start\n--- azmlinfsrv:\n{logs['azmlinfsrv'].read_text()[-3000:]}"
                    f"\n--- modelfunc:\n{logs['modelfunc'].read_text()[-3000:]}"), [az, mf]
        mf_base = json.loads(ready.read_text())["url"]
        answers = {q: (fetch(az_base, q, prefix=""), fetch(mf_base, q)) for q in QUERIES}
    finally:
        _signal(az, signal.SIGTERM)
        _signal(mf, signal.SIGINT)
    return Pair(variant, answers, {}), [az, mf]


def _shared_pair(variant: Variant, run: Run) -> Pair | str:
    """A catalogue script's pair from its conformance run (support/conformance/shared.py), which asked both freshly
    started servers for every ?version= of QUERIES before any other request."""
    if not all(run.started.values()) or list(run.documents) != list(QUERIES):
        return (f"{variant.name}: a server did not start ({run.started})\n--- azmlinfsrv:\n"
                f"{run.logs['azmlinfsrv'][-3000:]}\n--- modelfunc:\n{run.logs['modelfunc'][-3000:]}")
    return Pair(variant, dict(run.documents), {})


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Pair]:
    """Every variant under azmlinfsrv and `modelfunc serve`, each asked for every ?version=: the catalogue's scripts
    from the conformance run shared with test_conformance.py, a user's documents on servers of their own (forked
    from the same fork servers)."""
    work = tmp_path_factory.mktemp("openapi-oracle")
    zygotes = shared.zygotes(request.config)
    started = time.monotonic()
    own = [v for v in VARIANTS if v.files]
    with ThreadPoolExecutor(max_workers=len(own)) as pool:
        own_results = pool.map(lambda v: _run_pair(v, work, zygotes), own)
        catalogue = [v for v in VARIANTS if not v.files]
        runs = shared.runs([v.script for v in catalogue], request.config, tmp_path_factory, documents_only=True)
        results = [(_shared_pair(v, runs[v.script]), []) for v in catalogue] + list(own_results)
    _reap([pid for _, pids in results for pid in pids])
    failed = [r for r, _ in results if isinstance(r, str)]
    assert not failed, "\n\n".join(failed)
    print(f"openapi: {len(VARIANTS)} entry scripts on azmlinfsrv {zygotes['azmlinfsrv'].version} and modelfunc, "
          f"{len(QUERIES)} requests each, in {time.monotonic() - started:.0f} s")
    return {r.variant.name: r for r, _ in results}  # type: ignore[union-attr]


@needs_oracle
def test_the_catalogue_has_decorated_scripts() -> None:
    assert len(DECORATED) >= 10, DECORATED
    assert {"schema_numpy", "schema_pandas_records", "schema_standard"} <= set(DECORATED)


@needs_oracle
@pytest.mark.parametrize("name", DECORATED)
def test_service_schemas_are_azmlinfsrvs(pairs: dict[str, Pair], name: str) -> None:
    """inference-schema's ServiceInput and ServiceOutput, exactly as azmlinfsrv puts them in each version
    (server/swagger.py Swagger2Builder/Swagger3Builder._update_definitions)."""
    compared = 0
    for version in ("2", "3", "3.1"):
        oracle, ours = pairs[name].answers[version]
        assert oracle.status_code == ours.status_code, (version, oracle.text, ours.text)
        if oracle.status_code != 200:
            continue
        theirs, mine = schemas_of(oracle.json()), schemas_of(ours.json())
        assert mine["ServiceInput"] == theirs["ServiceInput"], version
        assert mine["ServiceOutput"] == theirs["ServiceOutput"], version
        compared += 1
    assert compared >= 2  # 3 and 3.1 are always served (inference-schema supports them for every type)


@needs_oracle
@pytest.mark.parametrize("name", [v.name for v in VARIANTS])
def test_the_same_versions_are_served(pairs: dict[str, Pair], name: str) -> None:
    """Served (200) or 404 with the same message for every ?version=, none included (server/routes.py,
    server/swagger.py Swagger.get_swagger); the content type is JSON on both."""
    for query, (oracle, ours) in pairs[name].answers.items():
        assert (query, oracle.status_code) == (query, ours.status_code), (oracle.text, ours.text)
        assert oracle.headers["content-type"] == ours.headers["content-type"] == "application/json"
        if oracle.status_code == 404:
            assert oracle.json() == ours.json(), query


@needs_oracle
def test_some_script_is_not_served_in_version_2(pairs: dict[str, Pair]) -> None:
    """The supported-version check is exercised: inference-schema refuses swagger 2 for mixed-type arrays."""
    oracle, ours = pairs["schema_pandas_split"].answers["2"]
    assert oracle.status_code == ours.status_code == 404
    assert ours.json()["message"] == ("Swagger version [2] is not supported for the scoring script. "
                                      "Supported swagger versions: [3, 3.1].")


@needs_oracle
def test_a_users_documents_are_served_as_they_are(pairs: dict[str, Pair]) -> None:
    answers = pairs["user_documents"].answers
    for query, expected in ((None, MINE_2), ("2.0", MINE_2), ("3", MINE_3), ("3.0", MINE_3), ("3.1", MINE_31)):
        oracle, ours = answers[query]
        assert oracle.json() == ours.json() == expected, query
    split = pairs["user_documents_split"].answers
    for query in ("2", "2.0"):  # where inference-schema alone gives a 404 (test_some_script_is_not_served_in_version_2)
        assert split[query][0].json() == split[query][1].json() == MINE_2
    oracle, ours = split["3.1"]  # `{}`: not a document (server/swagger.py get_swagger, `if not swagger_file`)
    assert oracle.status_code == ours.status_code == 200
    assert schemas_of(oracle.json())["ServiceInput"] == schemas_of(ours.json())["ServiceInput"]
    assert ours.json()["info"]["title"] == "conf-schema-pandas-split"


# ---- every other difference, one row each (generated into docs/openapi.md)


@dataclass(frozen=True)
class Difference:
    id: str
    where: str  # a regular expression over the JSON pointers that differ (the paths renamed as azmlinfsrv's)
    azmlinfsrv: str
    modelfunc: str
    why: str


DIFFERENCES = [
    Difference("paths", r"^/paths$",
               "`/`, `/score` and `/swagger.json`",
               "`/api/<route>` (modelfunc.yaml's route; the host's route prefix is `api`) and `/api/swagger.json`",
               "The app's own routes: a Functions app serves its functions below `/api`. The rows below compare the "
               "operations with `/api/score` read as `/score` and `/api/swagger.json` as `/swagger.json`."),
    Difference("health-probe", r"^/paths/~1/",
               "`GET /` answers `Healthy` (server/routes.py health_probe)",
               "not described",
               "A Functions app has no function at `/`; the host's own page there (and `/admin/host/status`, "
               "locally) "
               "is not the app's."),
    Difference("methods", r"^/paths/~1score/(get|put|patch|delete|options)(/|$)",
               "`POST /score` only (GET and OPTIONS are answered too, but not described)",
               "every method modelfunc.yaml lists: GET with each input as a query parameter (JSON), OPTIONS "
               "answered empty, PUT/PATCH/DELETE passed to a @rawhttp run() or answered 405",
               "The document describes what the app answers: the function's methods are modelfunc.yaml's."),
    Difference("security", r"(^/security(/|$)|^/securityDefinitions/|^/components/securitySchemes/|/security/)",
               "a Bearer token in `Authorization` (apiKey), on `POST /score`",
               "the function's auth level: a function key in `x-functions-key` or `?code=` (the host's master key for "
               "admin) on both operations; none for anonymous",
               "The Functions host checks the keys, as Azure ML's endpoint checks its token; the conformance "
               "scripts' apps are anonymous, so theirs have none."),
    Difference("title", r"^/info/(title|description)$",
               "`info.title` `ML service` (`SERVICE_NAME`, server/config.py)",
               "the app's name (modelfunc.yaml `name`), or the `SERVICE_NAME` app setting",
               "The app is the service; `SERVICE_NAME` and `SERVICE_VERSION` are honoured as azmlinfsrv honours "
               "them."),
    Difference("schemes", r"^/schemes/",
               "swagger 2: `schemes: [https]`",
               "no `schemes`: the scheme the document was fetched with",
               "The local host serves http, Azure https; an absent `schemes` means the document's own."),
    Difference("refusals", r"^/paths/~1score/post/(responses/(400|415)|requestBody/required|parameters/0/required)",
               "`POST /score`: 200 and default only; the body not required",
               "an inference-schema run(): 400 (not a JSON object, or not ServiceInput) and 415 (not JSON) "
               "described, and the body required",
               "What the runtime answers, in azmlinfsrv's words (docs/contract.md); an empty body is refused."),
    Difference("swagger-operation", r"^/paths/~1swagger\.json/get/(parameters|responses)/",
               "`?version=` an integer, 2 or 3; the answer `text/plain`",
               "`?version=` one of the versions served (2, 2.0, 3, 3.0, 3.1), a 404 for the others; the answer "
               "`application/json`",
               "What the route takes and answers (azmlinfsrv's route takes the same strings, server/routes.py)."),
    Difference("error-id", r"^/(definitions|components/schemas)/ErrorResponse/properties/error_id/",
               "`ErrorResponse` `{message}`",
               "`ErrorResponse` `{message, error_id}`",
               "A failed run() answers an error id (docs/contract.md, error-id)."),
    Difference("inferred", r"^/(definitions|components/schemas)/Service(Input|Output)(/|$)",
               "an undecorated run(): `{\"type\": \"object\", \"example\": {}}` (server/swagger.py)",
               "an undecorated run(): inferred at package time from `samples.input` and `samples.expected`, with the "
               "sample as example (azmlinfsrv's schema when the sample is not JSON)",
               "The samples say what run() takes and answers; a client can build a request from the document."),
]


def _pointer(parts: tuple[str, ...]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _leaves(value: Any, parts: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaves(v, (*parts, str(k)))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, (*parts, str(i)))
    else:
        yield _pointer(parts), value


def _as_azmlinfsrv(doc: dict[str, Any]) -> dict[str, Any]:
    """Our document with its paths named as azmlinfsrv names the same operations."""
    renamed = {"/api/score": "/score", "/api/swagger.json": "/swagger.json"}
    return {**doc, "paths": {renamed.get(k, k): v for k, v in doc.get("paths", {}).items()}}


def differences(oracle: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """The JSON pointers where the two documents differ (a value, or a key on one side only)."""
    if set(ours.get("paths", {})) - {"/api/score", "/api/swagger.json"} or set(oracle.get("paths", {})) - {
            "/", "/score", "/swagger.json"}:
        return ["/paths"]
    theirs, mine = dict(_leaves(oracle)), dict(_leaves(_as_azmlinfsrv(ours)))
    found = sorted(p for p in theirs.keys() | mine.keys() if theirs.get(p, ...) != mine.get(p, ...))
    if "paths" in ours and set(ours["paths"]) != set(oracle["paths"]):
        found.insert(0, "/paths")
    return found


def explain(pointer: str) -> str | None:
    return next((d.id for d in DIFFERENCES if re.search(d.where, pointer)), None)


@needs_oracle
def test_everything_else_differs_only_deliberately(pairs: dict[str, Pair]) -> None:
    rows: Counter[str] = Counter()
    unexplained = []
    for name, pair in pairs.items():
        for query in (None, "2", "3", "3.1"):
            oracle, ours = pair.answers[query]
            if oracle.status_code != 200:
                continue
            for pointer in differences(oracle.json(), ours.json()):
                row = explain(pointer)
                if row is None:
                    unexplained.append(f"{name} ?version={query}: {pointer}")
                else:
                    rows[row] += 1
    assert not unexplained, ("differences from azmlinfsrv's document that no row of DIFFERENCES explains (fix "
                             "modelfunc_openapi.py, or add a row with its reason):\n  " + "\n  ".join(unexplained))
    stale = [d.id for d in DIFFERENCES if not rows[d.id]]
    assert not stale, f"rows that no longer differ (remove them): {stale}; in use: {dict(rows)}"
    # a user's documents are served as they are: nothing differs there
    for query in (None, "3", "3.1"):
        oracle, ours = pairs["user_documents"].answers[query]
        assert differences(oracle.json(), ours.json()) == []


def test_the_difference_finder_sees_a_difference() -> None:
    a = {"swagger": "2.0", "paths": {"/score": {"post": {"x": [1, 2]}}}}
    b = {"swagger": "2.0", "paths": {"/api/score": {"post": {"x": [1, 3]}}}}
    assert differences(a, b) == ["/paths", "/paths/~1score/post/x/1"]
    assert explain("/paths/~1score/post/x/1") is None
    assert explain("/paths/~1score/get/parameters/0/name") == "methods"


def as_markdown() -> str:
    rows = ["| id | azmlinfsrv | modelfunc | why |", "|---|---|---|---|"]
    rows += [f"| `{d.id}` | {d.azmlinfsrv} | {d.modelfunc} | {d.why} |" for d in DIFFERENCES]
    return "\n".join(rows)


def test_the_document_lists_the_differences() -> None:
    check_generated_block(DOC, START, END, as_markdown(), "DIFFERENCES in tests/host/test_openapi.py", WRITE)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_generated_block(DOC, START, END, as_markdown())
    else:
        print(f"usage: {WRITE}", file=sys.stderr)
        sys.exit(2)


def test_a_sample_nested_too_deeply_gets_azmlinfsrvs_schema_not_a_traceback(tmp_path: Path) -> None:
    from modelfunc.openapi import UNDECORATED, sample_schema

    deep = tmp_path / "input.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert sample_schema(deep, "samples/input.json", "input") == (
        dict(UNDECORATED), "samples/input.json is nested too deeply to describe")
