"""modelfunc OpenAPI: the app's OpenAPI (swagger) document, served at ``GET /api/swagger.json``.

This file is copied verbatim into every HTTP-trigger app ``modelfunc package`` renders, beside
``modelfunc_runtime.py``; ``EntryScript.handle_openapi`` calls :func:`answer`. It depends on the standard library
only (``inference-schema`` when score.py uses it). docs/openapi.md describes what is served.

It follows Azure ML's own scoring server, azmlinfsrv (azureml-inference-server-http 1.5.1,
``azureml_inference_server_http/server/swagger.py`` and ``routes.py``):

* ``GET /swagger.json`` with ``?version=`` 2 (the default), 2.0, 3, 3.0 or 3.1 (``routes.py``
  ``get_swagger_specification``; the aliases are ``swagger.py`` ``Swagger._register_builder``);
* ``ServiceInput`` and ``ServiceOutput`` are inference-schema's ``get_input_schema(run)`` / ``get_output_schema(run)``
  when run() is decorated, and a version is served only when ``get_supported_versions(run)`` has it
  (``swagger.py`` ``_SwaggerBuilder._generate_swagger``); an unknown or unsupported version is a 404 with
  azmlinfsrv's message (``swagger.py`` ``Swagger.get_swagger``, ``routes.py``);
* a ``swagger.json`` or ``swagger2.json`` (version 2), ``swagger3.json`` (3) or ``swagger3.1.json`` (3.1) of the
  user's, beside the entry script, is served as it is (``swagger.py`` ``_read_user_swagger``);
* version 3.1 is the 3.0 document with ``openapi: 3.1.0`` (``swagger.py`` ``Swagger31Builder``).

What differs, on purpose: the paths are the app's own (``/api/<route>`` with its methods and
``/api/swagger.json``, no health probe at ``/``); the security is the function's auth level (a function key in
``x-functions-key`` or ``?code=``; none when anonymous) instead of a Bearer token; the title is the app's name;
an undecorated run() gets a schema inferred from the project's samples at package time (``modelfunc_openapi.json``,
written by ``modelfunc package``) instead of ``{"type": "object", "example": {}}``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any

__all__ = ["DESCRIPTION_FILE", "Documents", "UNDECORATED", "answer", "documents"]

logger = logging.getLogger("modelfunc.runtime")

# Written by `modelfunc package` beside function_app.py: the app's HTTP functions and the schemas inferred from the
# project's samples (used when run() has no inference-schema decorators).
DESCRIPTION_FILE = "modelfunc_openapi.json"

# azmlinfsrv's schema for both ServiceInput and ServiceOutput of a run() without decorators (swagger.py
# _SwaggerBuilder._generate_swagger): modelfunc uses it when the project has no JSON sample.
UNDECORATED: dict[str, Any] = {"type": "object", "example": {}}

# The document versions and the ?version= values that ask for each (swagger.py: @Swagger._register_builder("2",
# aliases=["2.0"]), ("3", aliases=["3.0"]), ("3.1")), and the name inference-schema gives each
# (inference_schema._constants.ALL_SUPPORTED_VERSIONS).
ALIASES: dict[str, tuple[str, ...]] = {"2": ("2", "2.0"), "3": ("3", "3.0"), "3.1": ("3.1",)}
SCHEMA_VERSION = {"2": "2.0", "3": "3.0", "3.1": "3.1"}
DEFAULT_VERSION = "2"  # routes.py: "Setting default version where no query parameters passed"
# The user's own documents, first found wins (swagger.py: Swagger2Builder._read_user_swagger reads swagger.json,
# then swagger2.json; the others read swagger{version}.json).
USER_FILES: dict[str, tuple[str, ...]] = {"2": ("swagger.json", "swagger2.json"), "3": ("swagger3.json",),
                                          "3.1": ("swagger3.1.json",)}


def _key_schemes(auth_level: str) -> dict[str, dict[str, str]]:
    """How a caller passes the key the Functions host checks: the x-functions-key header or the code query
    parameter; a function key (or a host key), or for an admin function the host's master key."""
    key = ("The host's master key (the function's auth level is admin)" if auth_level == "admin" else
           "A function key of the function, or a host key (the Azure portal lists them under App keys and the "
           "function's Function Keys)")
    return {"functionKey": {"type": "apiKey", "name": "x-functions-key", "in": "header", "description": key},
            "functionKeyQuery": {"type": "apiKey", "name": "code", "in": "query",
                                 "description": f"{key}, as the code query parameter"}}


_ORDER = ("operationId", "description", "security", "parameters", "requestBody", "responses")


class DocumentError(Exception):
    """A user-supplied swagger file cannot be read: answered 500 with the file's name."""


def _error_schema() -> dict[str, Any]:
    # azmlinfsrv's ErrorResponse (swagger2_template.json, swagger3_template.json), plus the error_id a failed run()
    # answers with (docs/contract.md, error-id).
    return {"type": "object", "properties": {
        "message": {"type": "string"},
        "error_id": {"type": "string", "description": "A failed run(): the id of its traceback in the log"}}}


def _ref(version: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}" if version == "2" else f"#/components/schemas/{name}"}


def _response(version: str, description: str, schema: dict[str, Any] | None,
              media: str = "application/json") -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        if version == "2":
            out["schema"] = schema
        else:
            out["content"] = {media: {"schema": schema}}
    return out


class Documents:
    """Every OpenAPI document of one app, built once (as azmlinfsrv builds them at start)."""

    def __init__(self, entry: Any, description: dict[str, Any], app_root: Path) -> None:
        self.entry = entry
        self.description = description
        self.app_root = Path(app_root)
        self.documents: dict[str, Any] = {}  # every ?version= alias → its document
        self.supported: list[str] = []  # the versions served (azmlinfsrv: Swagger.supported_versions)
        self.decorated = entry.style == "schema"
        schema_versions = _supported_versions(entry._run)
        # The user's document when there is one, and it is not empty (swagger.py _SwaggerBuilder.get_swagger: `if not
        # swagger_file: return self._generate_swagger()`); else one generated when inference-schema can describe run()
        # in that version ("If request swagger version not supported, this will remain None").
        user = {version: self._user_document(version) for version in ALIASES}
        self.supported = sorted(v for v in ALIASES if user[v] or SCHEMA_VERSION[v] in schema_versions)
        for version in self.supported:
            document = user[version] or self._generate(version)
            for alias in ALIASES[version]:
                self.documents[alias] = document

    # ---------------------------------------------------------------- what azmlinfsrv does

    def _user_document(self, version: str) -> Any:
        """The first of the version's files that holds a document: one that is empty ({}, null) is passed over
        (swagger.py Swagger2Builder._read_user_swagger: `if swagger: return swagger`, then swagger2.json)."""
        for name in USER_FILES[version]:
            path = self.app_root / name
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as e:
                raise DocumentError(f"{name} beside the entry script cannot be read: {e}") from None
            try:
                document = json.loads(text)
            except json.JSONDecodeError as e:
                raise DocumentError(f"{name} beside the entry script is not valid JSON ({e}); fix it, or remove "
                                    f"it to get the document modelfunc generates") from None
            if document:
                return document
        return None

    def _generate(self, version: str) -> dict[str, Any]:
        if self.decorated:
            from inference_schema.schema_util import get_input_schema, get_output_schema

            service_input, service_output = get_input_schema(self.entry._run), get_output_schema(self.entry._run)
        else:
            inferred = self.description.get("inferred") or {}
            service_input = inferred.get("input") or copy.deepcopy(UNDECORATED)
            service_output = inferred.get("output") or copy.deepcopy(UNDECORATED)
        return self._document(version, service_input, service_output)

    def get(self, version: str | None) -> tuple[int, Any]:
        """(status, body) for ``?version=``: azmlinfsrv's Swagger.get_swagger and its route."""
        if version is None:
            version = DEFAULT_VERSION
        listed = ", ".join(sorted(self.supported))
        if not any(version in aliases for aliases in ALIASES.values()):
            return 404, {"message": f"Swagger version [{version}] is not valid. Supported versions: [{listed}]."}
        document = self.documents.get(version)
        if not document:
            return 404, {"message": f"Swagger version [{version}] is not supported for the scoring script. "
                                    f"Supported swagger versions: [{listed}]."}
        return 200, document

    # ---------------------------------------------------------------- the document

    def _security(self, function: dict[str, Any]) -> list[dict[str, list[str]]]:
        if function.get("auth_level", "function") == "anonymous":
            return []
        return [{"functionKey": []}, {"functionKeyQuery": []}]

    def _document(self, version: str, service_input: Any, service_output: Any) -> dict[str, Any]:
        d = self.description
        prefix = "/" + str(d.get("route_prefix", "api")).strip("/")
        score, swagger = d["score"], d["swagger"]
        title = os.environ.get("SERVICE_NAME", "").strip() or d.get("title") or "modelfunc app"
        auth = score.get("auth_level", "function")
        info = {
            "title": title,
            "description": f"API specification for the Azure Functions app {title}: the entry script "
                           f"{d.get('entry_script', 'score.py')} served by modelfunc"
                           + ("; every call needs the host's master key" if auth == "admin" else ""),
            "version": os.environ.get("SERVICE_VERSION", "").strip() or "1.0",
        }
        doc: dict[str, Any] = {"swagger": "2.0"} if version == "2" else {"openapi": "3.0.3"}
        doc["info"] = info
        if version == "2":
            doc["consumes"] = ["application/json"]
            doc["produces"] = ["application/json"]
        schemes = _key_schemes(auth)
        paths: dict[str, Any] = {}
        paths[f"{prefix}/{score['route']}"] = self._score_operations(version, score, service_input)
        paths[f"{prefix}/{swagger['route']}"] = {"get": self._swagger_operation(version, swagger)}
        doc["paths"] = paths
        schemas = {"ServiceInput": service_input, "ServiceOutput": service_output, "ErrorResponse": _error_schema()}
        uses_keys = any(self._security(f) for f in (score, swagger))
        if version == "2":
            if uses_keys:
                doc["securityDefinitions"] = schemes
            doc["definitions"] = schemas
        else:
            doc["components"] = {"schemas": schemas}
            if uses_keys:
                doc["components"]["securitySchemes"] = schemes
        if version == "3.1":
            doc["openapi"] = "3.1.0"  # swagger.py Swagger31Builder: the 3.0 document, relabelled
        return doc

    def _score_operations(self, version: str, score: dict[str, Any], service_input: Any) -> dict[str, Any]:
        style = self.entry.style
        security = self._security(score)
        error = _ref(version, "ErrorResponse")
        failed = _response(version, "The service failed to execute due to an error.", error)
        ok = _response(version, "The service processed the input correctly and provided a result prediction, "
                                "if applicable.", _ref(version, "ServiceOutput"))
        operations: dict[str, Any] = {}
        for method in score.get("methods", ["GET", "POST"]):
            op: dict[str, Any] = {"operationId": "RunMLService" if method == "POST" else
                                  f"RunMLService{method.capitalize()}"}
            if security:
                op["security"] = security
            responses: dict[str, Any] = {"200": ok}
            if method == "POST" or (method in ("PUT", "PATCH") and style == "rawhttp"):
                op["description"] = "Run web service's model and get the prediction output"
                payload = "The input payload for executing the real-time machine learning service."
                if version == "2":
                    op["parameters"] = [{"name": "serviceInputPayload", "in": "body", "description": payload,
                                         "schema": _ref(version, "ServiceInput")}]
                    body = op["parameters"][0]
                else:
                    op["requestBody"] = body = {"description": payload, "content": {
                        "application/json": {"schema": _ref(version, "ServiceInput")}}}
                if style == "schema":  # the runtime refuses an empty body (azmlinfsrv's 400); run() gets one as ""
                    body["required"] = True
                    responses["400"] = _response(version, "The body is not a JSON object, or does not match "
                                                           "ServiceInput.", error)
                    responses["415"] = _response(version, "The body is not sent as application/json.", error)
            elif method == "GET":
                op["description"] = ("Run web service's model on the query parameters: each is a value of the "
                                     "input as JSON text (a text that is not JSON is taken as a string)")
                parameters = self._query_parameters(version, service_input)
                if parameters:
                    op["parameters"] = parameters
                if style == "schema":
                    responses["400"] = _response(version, "A parameter is missing or does not match ServiceInput.",
                                                 error)
            elif method == "OPTIONS" and style != "rawhttp":
                op["description"] = "Answered 200 with an empty body, as azmlinfsrv answers it; run() is not called"
                responses = {"200": {"description": "An empty answer."}}
            elif style == "rawhttp":
                op["description"] = f"run() (@rawhttp) gets the {method} request itself and answers it"
            else:
                op["description"] = f"run() takes GET and POST only: {method} is answered 405"
                responses = {"405": _response(version, "Method not allowed.", error)}
            responses["default"] = failed
            op["responses"] = responses
            operations[method.lower()] = {k: op[k] for k in _ORDER if k in op}
        return operations

    def _query_parameters(self, version: str, service_input: Any) -> list[dict[str, Any]]:
        """GET passes each query parameter to run() as an input (the runtime parses it as JSON when it can)."""
        properties = service_input.get("properties") if isinstance(service_input, dict) else None
        if not isinstance(properties, dict):
            return []
        if self.decorated:  # the runtime answers 400 for a parameter without a default that is not given
            required = {p.name for p in self.entry.params if p.default is p.empty}
        else:
            required = set(service_input.get("required") or ())
        example = service_input.get("example")
        parameters = []
        for name, schema in properties.items():
            p: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            has_example = isinstance(example, dict) and name in example and isinstance(schema, dict)
            if version == "2":  # no JSON-valued parameters in swagger 2: the value is JSON text (x-example: the
                p.update(type="string", description=f"ServiceInput.properties.{name}, as JSON text")  # usual key)
                if has_example:
                    p["x-example"] = json.dumps(example[name])
            else:  # the value is JSON; ServiceInput's example for it, in its schema
                p["content"] = {"application/json": {"schema": {**schema, "example": example[name]} if has_example
                                                     else schema}}
            parameters.append(p)
        return parameters

    def _swagger_operation(self, version: str, swagger: dict[str, Any]) -> dict[str, Any]:
        choices = [alias for v in self.supported for alias in ALIASES[v]]
        parameter: dict[str, Any] = {"name": "version", "in": "query", "required": False,
                                     "description": f"The document's version (default {DEFAULT_VERSION})"}
        if version == "2":
            parameter.update(type="string", enum=choices)
        else:
            parameter["schema"] = {"type": "string", "enum": choices}
        op: dict[str, Any] = {"operationId": "GetSwaggerSpec", "description": "Get the Swagger specification."}
        security = self._security(swagger)
        if security:
            op["security"] = security
        op["parameters"] = [parameter]
        op["responses"] = {
            "200": _response(version, "The Swagger specification.", {"type": "object"}),
            "404": _response(version, "The version is not valid, or not supported for the scoring script.",
                             _ref(version, "ErrorResponse")),
            "default": _response(version, "The service failed to execute due to an error.",
                                 _ref(version, "ErrorResponse")),
        }
        return op


def _supported_versions(run: Any) -> list[str]:
    """inference-schema's get_supported_versions(run) (all of them when inference-schema is not installed: run() is
    then not decorated, and azmlinfsrv's call answers all of them for an undecorated run())."""
    try:
        from inference_schema.schema_util import get_supported_versions
    except ImportError:
        return list(SCHEMA_VERSION.values())
    return list(get_supported_versions(run))


_LOCK = threading.Lock()


def documents(entry: Any, app_root: str | os.PathLike[str] | None = None) -> Documents:
    """The app's documents (built at the first call, then kept on ``entry``)."""
    built = getattr(entry, "_openapi_documents", None)
    if built is not None:
        return built
    with _LOCK:
        built = getattr(entry, "_openapi_documents", None)
        if built is None:
            root = Path(app_root) if app_root is not None else entry.path.parent
            path = root / DESCRIPTION_FILE
            try:
                description = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise DocumentError(f"{DESCRIPTION_FILE} is missing beside {entry.path.name}: the app was not "
                                    "written by `modelfunc package`; package it again") from None
            except (OSError, ValueError) as e:
                raise DocumentError(f"{DESCRIPTION_FILE} beside {entry.path.name} cannot be read ({e}); package the "
                                    "app again") from None
            built = Documents(entry, description, root)
            entry._openapi_documents = built
    return built


def answer(entry: Any, version: str | None, app_root: str | os.PathLike[str] | None = None) -> tuple[int, bytes]:
    """(status, JSON body) for ``GET /api/swagger.json?version=...``; never raises."""
    try:
        status, body = documents(entry, app_root).get(version)
    except DocumentError as e:
        logger.error("The OpenAPI document cannot be served: %s", e)
        status, body = 500, {"message": str(e)}
    except Exception as e:  # noqa: BLE001 - e.g. inference-schema failing on run()'s decorators: logged, answered
        error_id = uuid.uuid4().hex
        logger.error("[%s] building the OpenAPI document failed:\n%s", error_id, traceback.format_exc())
        status, body = 500, {"message": f"The OpenAPI document could not be built ({type(e).__name__}); see the log "
                                        f"for error id {error_id}", "error_id": error_id}
    return status, json.dumps(body).encode("utf-8")
