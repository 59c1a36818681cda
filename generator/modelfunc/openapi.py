"""Package time for the app's OpenAPI document (served by runtime/modelfunc_openapi.py; docs/openapi.md).

``modelfunc package`` writes ``modelfunc_openapi.json`` beside function_app.py: the app's HTTP functions (route,
methods, auth level) and, for a run() without inference-schema decorators, the JSON schemas of its input and output
inferred from the project's samples (``samples.input`` and ``samples.expected`` in modelfunc.yaml). Nothing of
score.py is imported here: a decorated run() is described by inference-schema inside the app, at run time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .config import Project
from .errors import PackageError
from .runtime.modelfunc_openapi import DESCRIPTION_FILE, UNDECORATED, USER_FILES
from .triggers import OPENAPI_ROUTE

SWAGGER_FUNCTION = "swagger"  # the app's second HTTP function: GET /api/swagger.json
SWAGGER_ROUTE = OPENAPI_ROUTE
ROUTE_PREFIX = "api"  # host.json extensions.http.routePrefix (appgen._host_json)
MAX_EXAMPLE_BYTES = 64 * 1024  # a larger sample gives its schema but is not repeated in every document as example

__all__ = ["DESCRIPTION_FILE", "SWAGGER_FUNCTION", "SWAGGER_ROUTE", "description", "infer_schema",
           "check_user_documents"]


def infer_schema(value: Any) -> dict[str, Any]:
    """The JSON schema of a JSON value, written as inference-schema writes a StandardPythonParameterType's (type,
    format int64/double, every key of an object required), for swagger 2, OpenAPI 3.0 and 3.1 alike: the items of
    an array are the merge of every item's schema, and what cannot be one type (null, mixed items) is ``{}``, any
    value."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer", "format": "int64"}
    if isinstance(value, float):
        return {"type": "number", "format": "double"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        items: dict[str, Any] | None = None
        for item in value:
            schema = infer_schema(item)
            items = schema if items is None else _merge(items, schema)
        return {"type": "array", "items": items if items is not None else {}}
    if isinstance(value, dict):
        if not value:
            return {"type": "object"}
        return {"type": "object", "required": list(value),
                "properties": {str(k): infer_schema(v) for k, v in value.items()}}
    return {}  # null


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One schema for two items of an array."""
    if a == b:
        return a
    if not a or not b:
        return {}
    kinds = {a.get("type"), b.get("type")}
    if kinds == {"integer", "number"}:
        return {"type": "number", "format": "double"}
    if kinds == {"array"}:
        return {"type": "array", "items": _merge(a["items"], b["items"])}
    if kinds == {"object"}:
        pa, pb = a.get("properties", {}), b.get("properties", {})
        properties = {k: _merge(pa[k], pb[k]) if k in pa and k in pb else pa.get(k, pb.get(k)) for k in {**pa, **pb}}
        required = [k for k in a.get("required", []) if k in b.get("required", [])]
        merged: dict[str, Any] = {"type": "object"}
        if required:
            merged["required"] = required
        if properties:
            merged["properties"] = properties
        return merged
    return {}


def _strict_json(value: Any) -> bool:
    """Whether the value is JSON as RFC 8259 has it (no NaN or Infinity, which Python's json reads and writes)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_strict_json(v) for v in value)
    if isinstance(value, dict):
        return all(_strict_json(v) for v in value.values())
    return True


def sample_schema(path: Path, shown: str, what: str) -> tuple[dict[str, Any], str]:
    """The schema of one sample file with the sample as its example, and one line saying where it came from.
    A sample that is not JSON (by its name or its content) gives azmlinfsrv's schema for an undecorated run()."""
    fallback = dict(UNDECORATED)  # exactly azmlinfsrv's
    if path.suffix.lower() != ".json":
        return fallback, f"{shown} is not a .json file"
    try:
        value = json.loads(path.read_bytes())
        schema = infer_schema(value)
        size = len(json.dumps(value))
    except (UnicodeDecodeError, ValueError) as e:
        return fallback, f"{shown} is not valid JSON ({e})"
    except RecursionError:  # JSON nested thousands deep: no schema worth reading either
        return fallback, f"{shown} is nested too deeply to describe"
    schema["description"] = f"{what} of run(), inferred by modelfunc from {shown} (run() has no inference-schema " \
                            "decorators)"
    if not _strict_json(value):
        return schema, f"inferred from {shown} (its NaN/Infinity values are not JSON: no example)"
    if size > MAX_EXAMPLE_BYTES:
        return schema, f"inferred from {shown} ({size} bytes: too large to repeat as the example)"
    schema["example"] = value
    return schema, f"inferred from {shown}"


def _shown(project: Project, path: Path) -> str:
    try:
        return path.relative_to(project.root).as_posix()
    except ValueError:
        return path.name


def description(project: Project, function_name: str, title: str) -> tuple[dict[str, Any], list[str]]:
    """What the runtime needs to build the document (written to modelfunc_openapi.json), and what package says."""
    trigger = project.trigger
    auth = trigger.auth_level
    input_schema, input_note = sample_schema(project.sample_input, _shown(project, project.sample_input), "The input")
    output_schema, output_note = sample_schema(project.sample_expected, _shown(project, project.sample_expected),
                                               "The output")
    return {
        "title": title,
        "entry_script": project.entry_script.name,
        "route_prefix": ROUTE_PREFIX,
        "score": {"function": function_name, "route": trigger.route, "methods": list(trigger.methods),
                  "auth_level": auth},
        "swagger": {"function": SWAGGER_FUNCTION, "route": SWAGGER_ROUTE, "methods": ["GET"], "auth_level": auth},
        # Used only when run() is not decorated with inference-schema (the runtime decides: it imports score.py).
        "inferred": {"input": input_schema, "output": output_schema},
    }, [f"input schema {input_note}", f"output schema {output_note}"]


def check_user_documents(files: list[tuple[str, Path]], ignore_file: str, entry_name: str) -> None:
    """A swagger.json (swagger2.json, swagger3.json, swagger3.1.json) shipped beside the entry script is served as
    it is, as azmlinfsrv serves it: it must be JSON (azmlinfsrv does not start with one that is not)."""
    names = {name for names in USER_FILES.values() for name in names}
    for rel, path in files:
        if rel not in names:
            continue
        try:
            json.loads(path.read_bytes())
        except (UnicodeDecodeError, ValueError) as e:
            raise PackageError(
                f"{rel} beside the entry script is served as the app's OpenAPI document, as azmlinfsrv serves it, "
                f"but it is not valid JSON ({e})", file=path,
                hint=f"fix it; or delete it (or add the line /{rel} to {ignore_file} beside {entry_name}) to serve "
                     "the document modelfunc generates") from None
