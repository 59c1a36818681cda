"""modelfunc runtime: the Azure ML entry-script contract inside an Azure Functions app.

This file is copied verbatim into every app ``modelfunc package`` renders. It depends on
nothing but the standard library and ``azure-functions``; the AML packages
(``inference-schema``, ``azureml-contrib-services``) are used only when score.py uses them.

The contract follows ``azureml-inference-server-http``:

* ``init()`` runs once, before the first request (started in the background at import so the
  Functions host can index the app without waiting for a large model to load);
* an undecorated ``run(data)`` receives the request body (or blob) as a JSON string;
* a ``run`` decorated with ``@input_schema`` receives keyword arguments from the JSON object;
* a ``run`` decorated with ``@rawhttp`` receives an ``AMLRequest`` and may return ``AMLResponse``;
* a ``request_headers`` parameter, when present, receives the request headers as a dict;
* ``AZUREML_MODEL_DIR`` points at the model folder of the app.

Errors: malformed input → 400 (415 for a schema-decorated run without a JSON body); an exception
in ``run()`` → 500 with an error id, the traceback only in the log. A blob that fails to score
gets an error record written through the error output binding instead of being retried forever.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import mimetypes
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EntryScript", "EntryScriptError", "Outcome", "load"]

logger = logging.getLogger("modelfunc.runtime")

INIT_TIMEOUT_S = float(os.environ.get("MODELFUNC_INIT_TIMEOUT", "600"))
_RAWHTTP_MODULES = ("azureml.contrib.services.aml_request", "azureml_inference_server_http.api.aml_request")


class EntryScriptError(Exception):
    """score.py cannot be used: import failure, missing init/run, a run() signature the contract forbids."""


class BadInput(Exception):
    """The request or blob cannot be handed to run(): becomes a 4xx answer, never a 500."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Outcome:
    """What one invocation produced, independent of the trigger that asked for it."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    error_id: str | None = None
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status < 400


def _json_default(value: Any) -> Any:
    # numpy arrays and scalars (and anything else that knows how to become a list/number).
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"run() returned a {type(value).__name__}, which is not JSON serializable")


def _error_body(message: str, error_id: str | None = None) -> bytes:
    body: dict[str, Any] = {"message": message}
    if error_id:
        body["error_id"] = error_id
    return json.dumps(body).encode()


def _is_response(value: Any) -> bool:
    """An AMLResponse / flask / werkzeug Response, by duck typing (no import of flask needed)."""
    return hasattr(value, "status_code") and hasattr(value, "get_data") and hasattr(value, "headers")


def _is_json_content_type(ctype: str | None) -> bool:
    if not ctype:
        return False
    media = ctype.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class EntryScript:
    """One loaded score.py and everything needed to call it the way Azure ML does."""

    def __init__(self, script: str | os.PathLike[str], *, model_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(script).resolve()
        if model_dir is not None:
            os.environ["AZUREML_MODEL_DIR"] = str(Path(model_dir).resolve())
        if not self.path.is_file():
            raise EntryScriptError(f"entry script {self.path} does not exist")
        self._reset_rawhttp_flags()
        module_name = f"modelfunc_entry_{uuid.uuid4().hex[:8]}"
        spec = importlib.util.spec_from_file_location(module_name, self.path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        script_dir = str(self.path.parent)
        if script_dir not in sys.path:
            sys.path.insert(0, script_dir)  # score.py may import modules that sit beside it
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException as ex:  # noqa: BLE001 - any failure in user code at import is a startup error
            raise EntryScriptError(
                f"importing {self.path.name} failed: {type(ex).__name__}: {ex}\n"
                + "".join(traceback.format_exception(type(ex), ex, ex.__traceback__)[-3:])
            ) from ex
        self.module = module
        for name in ("init", "run"):
            if not callable(getattr(module, name, None)):
                raise EntryScriptError(f"{self.path.name} does not define a {name}() function")
        self._init: Callable[[], Any] = module.init
        self._run: Callable[..., Any] = getattr(module, "driver_module", module).run
        self._analyze_run()
        self._init_lock = threading.Lock()
        self._ready = threading.Event()
        self._init_error: BaseException | None = None
        self._init_started = False

    # ------------------------------------------------------------------ loading

    @staticmethod
    def _reset_rawhttp_flags() -> None:
        # @rawhttp records itself in a module-level flag; clear it so that only this score.py counts.
        for name in _RAWHTTP_MODULES:
            mod = sys.modules.get(name)
            if mod is not None and hasattr(mod, "_rawHttpRequested"):
                mod._rawHttpRequested = False

    @staticmethod
    def _rawhttp_requested() -> bool:
        return any(getattr(sys.modules.get(n), "_rawHttpRequested", False) for n in _RAWHTTP_MODULES)

    @staticmethod
    def _schema_decorated(run: Callable[..., Any]) -> bool:
        if "inference_schema" not in sys.modules:
            return False
        from inference_schema.schema_util import is_schema_decorated

        return bool(is_schema_decorated(run))

    def _analyze_run(self) -> None:
        params = list(inspect.signature(self._run).parameters.values())
        bad = [p.name for p in params if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if bad:
            raise EntryScriptError(
                f"run() in {self.path.name} cannot accept positional-only arguments, *args or **kwargs "
                f"(found: {', '.join(bad)}); name each input, e.g. def run(data):"
            )
        self.wants_headers = any(p.name == "request_headers" for p in params)
        self.params = [p for p in params if p.name != "request_headers"]
        if not self.params:
            raise EntryScriptError(
                f"run() in {self.path.name} needs a parameter for the input data"
                + (' besides "request_headers"' if self.wants_headers else "")
                + ", e.g. def run(data):"
            )
        raw, schema = self._rawhttp_requested(), self._schema_decorated(self._run)
        if raw and schema:
            raise EntryScriptError(
                f"run() in {self.path.name} cannot be decorated with both @rawhttp and @input_schema; keep one"
            )
        self.style = "rawhttp" if raw else "schema" if schema else "json"
        logger.info("Loaded %s: run() style %s, parameters %s", self.path.name, self.style,
                    ", ".join(p.name for p in self.params))

    # ------------------------------------------------------------------ init

    def start_init(self) -> None:
        """Run init() in a background thread (once)."""
        with self._init_lock:
            if self._init_started:
                return
            self._init_started = True
        threading.Thread(target=self._do_init, name="modelfunc-init", daemon=True).start()

    def _do_init(self) -> None:
        started = time.perf_counter()
        try:
            logger.info("Calling init() of %s", self.path.name)
            self._init()
            logger.info("init() finished in %.0f ms", (time.perf_counter() - started) * 1000)
        except BaseException as ex:  # noqa: BLE001 - reported on every request and by wait_ready()
            self._init_error = ex
            logger.error("init() of %s failed:\n%s", self.path.name, traceback.format_exc())
        finally:
            self._ready.set()

    def wait_ready(self, timeout: float | None = INIT_TIMEOUT_S) -> None:
        """Block until init() has finished; raise EntryScriptError if it failed or timed out."""
        self.start_init()
        if not self._ready.wait(timeout):
            raise EntryScriptError(f"init() of {self.path.name} did not finish within {timeout:.0f} s")
        if self._init_error is not None:
            ex = self._init_error
            raise EntryScriptError(f"init() of {self.path.name} failed: {type(ex).__name__}: {ex}")

    # ------------------------------------------------------------------ invoke

    def invoke(
        self,
        body: bytes,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        query: dict[str, list[str]] | None = None,
        url: str = "http://localhost/score",
    ) -> Outcome:
        """Score one input. Never raises for a user or input error: the Outcome says what happened."""
        headers = dict(headers or {})
        started = time.perf_counter()
        try:
            self.wait_ready()
        except EntryScriptError as ex:
            error_id = uuid.uuid4().hex
            logger.error("[%s] %s", error_id, ex)
            return Outcome(503, _error_body(f"The model is not available: {ex}", error_id),
                           {"content-type": "application/json"}, error_id)
        try:
            kwargs = self._arguments(body, method=method, headers=headers, query=query or {}, url=url)
        except BadInput as ex:
            return Outcome(ex.status, _error_body(str(ex)), {"content-type": "application/json"})
        if self.wants_headers:
            kwargs["request_headers"] = headers
        run_started = time.perf_counter()
        try:
            result = self._run(**kwargs)
        except Exception as ex:  # noqa: BLE001 - user code
            elapsed = (time.perf_counter() - run_started) * 1000
            if self.style == "schema" and self._raised_before_user_code(ex):
                return Outcome(400, _error_body(f"The input does not match run()'s input schema: {ex}"),
                               {"content-type": "application/json"}, elapsed_ms=elapsed)
            error_id = uuid.uuid4().hex
            logger.error("[%s] run() raised:\n%s", error_id, traceback.format_exc())
            return Outcome(
                500,
                _error_body(f"run() failed ({type(ex).__name__}); see the log for error id {error_id}", error_id),
                {"content-type": "application/json", "x-ms-run-function-failed": "True"},
                error_id,
                elapsed,
            )
        elapsed = (time.perf_counter() - run_started) * 1000
        outcome = self._to_outcome(result)
        outcome.elapsed_ms = elapsed
        outcome.headers["x-ms-run-fn-exec-ms"] = f"{elapsed:.3f}"
        if outcome.status >= 500:
            outcome.headers["x-ms-run-function-failed"] = "True"
        logger.debug("scored in %.3f ms (total %.3f ms)", elapsed, (time.perf_counter() - started) * 1000)
        return outcome

    def _raised_before_user_code(self, ex: BaseException) -> bool:
        """True when inference-schema rejected the input before score.py's run() body started."""
        frames = traceback.extract_tb(ex.__traceback__)
        in_script = any(Path(f.filename).resolve() == self.path for f in frames if f.filename)
        in_schema = any("inference_schema" in f.filename for f in frames)
        return in_schema and not in_script

    def _arguments(self, body: bytes, *, method: str, headers: dict[str, str], query: dict[str, list[str]],
                   url: str) -> dict[str, Any]:
        first = self.params[0].name
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if self.style == "rawhttp":
            return {first: _aml_request(body, method=method, headers=headers, url=url)}
        if method == "GET":
            parsed = {k: _parse_json_or_text(v[0]) if len(v) == 1 else [_parse_json_or_text(x) for x in v]
                      for k, v in query.items()}
            if self.style == "json":
                return {first: json.dumps(parsed)}
            return self._schema_arguments(parsed)
        if method != "POST":
            raise BadInput(f"Method {method} is not supported; send the input with POST", 405)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as ex:
            raise BadInput(f"Input cannot be decoded as UTF-8: {ex}") from None
        if self.style == "json":
            if _is_json_content_type(ctype):
                _loads(text)
            return {first: text}
        if ctype and not _is_json_content_type(ctype):
            raise BadInput(f"Expected Content-Type application/json for this model, got {ctype}", 415)
        parsed = _loads(text)
        if not isinstance(parsed, dict):
            raise BadInput(
                "The body must be a JSON object whose keys are run()'s parameters: "
                + ", ".join(p.name for p in self.params)
            )
        return self._schema_arguments(parsed)

    def _schema_arguments(self, parsed: dict[str, Any]) -> dict[str, Any]:
        args = {}
        for p in self.params:
            value = parsed.get(p.name, p.default)
            if value is inspect.Parameter.empty:
                raise BadInput(f"A value is not provided for the {p.name!r} parameter.")
            args[p.name] = value
        return args

    @staticmethod
    def _to_outcome(result: Any) -> Outcome:
        if _is_response(result):
            headers = {k.lower(): v for k, v in result.headers.items()}
            return Outcome(int(result.status_code), result.get_data(), headers)
        try:
            body = json.dumps(result, default=_json_default).encode()
        except (TypeError, ValueError) as ex:
            error_id = uuid.uuid4().hex
            logger.error("[%s] run() output could not be serialized: %s", error_id, ex)
            return Outcome(500, _error_body(f"run() returned output that is not JSON: {ex}", error_id),
                           {"content-type": "application/json"}, error_id)
        return Outcome(200, body, {"content-type": "application/json"})

    # ------------------------------------------------------------------ triggers

    def handle_http(self, req: Any) -> Any:
        """An HTTP trigger invocation: azure.functions.HttpRequest → HttpResponse."""
        import azure.functions as func

        query = {k: [v] for k, v in req.params.items()}
        outcome = self.invoke(req.get_body() or b"", method=req.method.upper(), headers=dict(req.headers),
                              query=query, url=req.url)
        headers = dict(outcome.headers)
        mimetype = headers.pop("content-type", None)
        return func.HttpResponse(body=outcome.body, status_code=outcome.status, headers=headers, mimetype=mimetype)

    def handle_blob(self, blob: Any, output: Any, error: Any) -> Outcome:
        """A blob trigger invocation: the result goes to ``output``, a failure to ``error`` (never raised)."""
        data = blob.read()
        name = getattr(blob, "name", None) or "blob"
        props = getattr(blob, "blob_properties", None) or {}
        ctype = props.get("ContentType") or props.get("contentType") or ""
        if not ctype or ctype == "application/octet-stream":  # what most uploads get: judge by the name
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        outcome = self.invoke(data, method="POST", headers={"x-ms-blob-name": name, "content-type": ctype},
                              url=f"http://localhost/blob/{name}")
        if outcome.ok:
            output.set(outcome.body)
        else:
            record = {
                "blob": name,
                "status": outcome.status,
                "error_id": outcome.error_id,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "response": _parse_json_or_text(outcome.body.decode("utf-8", "replace")),
            }
            logger.error("Scoring blob %s failed (status %s, error id %s); wrote an error record",
                         name, outcome.status, outcome.error_id)
            error.set(json.dumps(record, indent=2).encode())
        return outcome

    def handle_message(self, msg: Any, output: Any) -> Outcome:
        """A Service Bus queue message: the result is sent to the output queue; a failure raises so the
        message is retried and then dead-lettered (the queue's own error record)."""
        outcome = self.invoke(msg.get_body(), method="POST",
                              headers={"content-type": getattr(msg, "content_type", None) or ""},
                              url="http://localhost/message")
        if not outcome.ok:
            raise RuntimeError(
                f"scoring message {getattr(msg, 'message_id', '')} failed with status {outcome.status}: "
                + outcome.body.decode("utf-8", "replace")
            )
        output.set(outcome.body.decode("utf-8"))
        return outcome


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as ex:
        if not text.strip():
            raise BadInput("The body is empty; send the input as JSON") from None
        raise BadInput(f"The body is not valid JSON: {ex}") from None


def _parse_json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


_REQUEST_CLASS: Any = None


def _aml_request(body: bytes, *, method: str, headers: dict[str, str], url: str) -> Any:
    """An ``AMLRequest`` (a flask Request) carrying the invocation, as azmlinfsrv passes to @rawhttp run()."""
    global _REQUEST_CLASS
    from werkzeug.test import EnvironBuilder

    if _REQUEST_CLASS is None:
        try:
            from azureml.contrib.services.aml_request import AMLRequest as base
        except ImportError:  # the newer home of the same class
            from azureml_inference_server_http.api.aml_request import AMLRequest as base  # type: ignore
        init = base.__mro__[1].__init__  # flask.Request.__init__(environ): AMLRequest.__init__ takes no environ

        class _InvocationRequest(base):  # type: ignore[misc, valid-type]
            def __init__(self, environ: dict[str, Any]) -> None:
                init(self, environ)

        _REQUEST_CLASS = _InvocationRequest
    env = EnvironBuilder(url, method=method, headers=headers, data=body).get_environ()
    return _REQUEST_CLASS(env)


def load(app_file: str | os.PathLike[str], *, entry_script: str = "score.py", model_dir: str = "model",
         cache_setting: str | None = None, cache_ttl_seconds: int | None = None) -> EntryScript:
    """Load the app's entry script (next to function_app.py) and start init() in the background.

    ``cache_setting`` names the app setting with the Redis connection string (``cache:`` in modelfunc.yaml);
    this runtime does not cache predictions yet, so it only says so.
    """
    if cache_setting:
        logger.warning("cache: %s (ttl %s s) is configured, but this runtime does not cache predictions yet: "
                       "every input is scored", cache_setting, cache_ttl_seconds)
    root = Path(app_file).resolve().parent
    entry = EntryScript(root / entry_script, model_dir=root / model_dir)
    entry.start_init()
    return entry


SELFTEST_MARK = "MODELFUNC-SELFTEST "


def selftest(sample: str) -> int:
    """``python -m modelfunc_runtime selftest SAMPLE`` in the app directory: import the app as the Functions
    worker does (indexing its functions), wait for init(), score SAMPLE, print one result line."""
    started = time.perf_counter()
    try:
        sys.path.insert(0, os.getcwd())
        import importlib

        app_module = importlib.import_module("function_app")
        functions = [f.get_function_name() for f in app_module.app.get_functions()]
        entry = app_module.entry
        entry.wait_ready()
        ctype = mimetypes.guess_type(sample)[0] or "application/octet-stream"
        outcome = entry.invoke(Path(sample).read_bytes(), headers={"content-type": ctype})
        result = {"ok": outcome.ok, "status": outcome.status, "functions": functions, "style": entry.style,
                  "body": outcome.body.decode("utf-8", "replace"),
                  "elapsed_ms": round((time.perf_counter() - started) * 1000, 1)}
    except BaseException as ex:  # noqa: BLE001 - every failure is the result
        result = {"ok": False, "error": f"{type(ex).__name__}: {ex}", "traceback": traceback.format_exc()}
    print(SELFTEST_MARK + json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "selftest":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        sys.exit(selftest(sys.argv[2]))
    print("usage: python -m modelfunc_runtime selftest SAMPLE", file=sys.stderr)
    sys.exit(2)
