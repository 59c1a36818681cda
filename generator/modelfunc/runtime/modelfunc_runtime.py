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
* ``run()`` is called inside a Flask request context (when Flask is installed), as azmlinfsrv calls it, so
  ``flask.request``, ``flask.jsonify``, ``make_response`` and ``send_file`` work in score.py;
* ``AZUREML_MODEL_DIR`` points at the model folder of the app.

docs/contract.md lists what differs from azmlinfsrv on purpose, each with its reason.

Prediction cache (``cache: {redis: ...}`` in modelfunc.yaml): with the app setting it names holding a Redis
connection string, successful answers of ``run()`` are kept in Redis under a key made of the model version
(a digest of the entry script, the files shipped beside it and the model files), the trigger and the exact input
bytes. The cache only ever makes answers faster: Redis down or slow costs one short timeout, the request is
scored normally, the outage is logged once and Redis is tried again later (with a growing back-off). It
needs the ``redis`` package (redis-py), which ``modelfunc package`` adds to the app's requirements.

Errors: over HTTP an undecorated run() gets the body as it is (it may parse it itself), as under azmlinfsrv; a
schema-decorated run() refuses what azmlinfsrv refuses, in its words (415 without a JSON content type, 400 for a
body that is not a JSON object), and an input inference-schema cannot convert → 400 (azmlinfsrv: 500); an
exception in ``run()`` → 500 with an error id, the traceback only in the log. A blob that fails to score (malformed
JSON included) gets an error record written through the error output binding instead of being retried forever.
JSON nested deeper than Python's parser can follow (its recursion limit) is the input's fault wherever it is parsed
(here, or by run() with json.loads or request.get_json): 400 and, for a blob, an error record. ``invoke`` never
raises: a request werkzeug refuses while reading it gets werkzeug's 4xx, and a fault of this shim a 500 with an id.
"""

from __future__ import annotations

import base64
import hashlib
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
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

__all__ = ["EntryScript", "EntryScriptError", "Outcome", "PredictionCache", "load", "parse_redis_connection"]

logger = logging.getLogger("modelfunc.runtime")
cache_logger = logging.getLogger("modelfunc.cache")

INIT_TIMEOUT_S = float(os.environ.get("MODELFUNC_INIT_TIMEOUT", "600"))
# Which deployment answered: the deploy sets this app setting (the image digest) only after the slot runs that
# image, and every answer carries it — an HTTP header, a stamp blob beside a blob answer — so a test can refuse
# an answer from a container that still runs the previous image.
DEPLOYMENT_SETTING = "MODELFUNC_DEPLOYMENT_ID"
DEPLOYMENT_HEADER = "x-modelfunc-deployment"
STAMP_CONTAINER = "modelfunc-stamps"  # a blob answer's stamp: <this container>/<output container>/<output name>
# A queue answer's stamp (a Service Bus output message carries only a body): in the host storage account, named
# by the input message's id; it also holds the answer's SHA-256, which pairs it with its output message.
MESSAGE_STAMP_PATH = STAMP_CONTAINER + "/messages/{MessageId}"
MESSAGE_STAMP_CONNECTION = "AzureWebJobsStorage"


def deployment_id() -> str:
    return os.environ.get(DEPLOYMENT_SETTING, "").strip()
# The cache's knobs, as app settings (the defaults suit Azure Cache for Redis in the app's region).
CACHE_TIMEOUT_S = float(os.environ.get("MODELFUNC_CACHE_TIMEOUT_MS", "250")) / 1000
CACHE_MAX_VALUE_BYTES = int(os.environ.get("MODELFUNC_CACHE_MAX_VALUE_BYTES", str(1024 * 1024)))
CACHE_BACKOFF_S = (1.0, 30.0)  # first and longest wait before Redis is tried again after an outage
CACHE_MAX_PENDING = 1024  # answers waiting to be written (write-behind); more are not cached until it drains
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
    # Set-Cookie values, one per cookie (a repeated header other than Set-Cookie is one combined value in headers).
    cookies: list[str] = field(default_factory=list)

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
    """What flask's ``Request.is_json`` (and so azmlinfsrv) accepts: application/json or application/*+json."""
    if not ctype:
        return False
    media = ctype.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# Statuses whose answers carry no body (RFC 9110 §6.4.1): sending one breaks the client's next read on the connection.
_NO_BODY_STATUSES = frozenset({204, 304})


def _no_body(status: int) -> bool:
    return status < 200 or status in _NO_BODY_STATUSES


def _combine_headers(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Response header lines → one value per name and the Set-Cookie values.

    azure.functions.HttpResponse keeps one value per name on the way to the host (its converter builds a dict),
    so a repeated header becomes one line with the values joined by ", ", which RFC 9110 §5.3 makes equivalent;
    Set-Cookie cannot be joined that way and the library passes each one on as a cookie of its own.
    """
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key, value = name.lower(), str(value)
        if key == "set-cookie":
            cookies.append(value)
        elif key in headers:
            headers[key] = f"{headers[key]}, {value}"
        else:
            headers[key] = value
    return headers, cookies


def _request_headers(headers: dict[str, str]) -> dict[str, str]:
    """``request_headers`` as azmlinfsrv passes it: ``dict(flask.request.headers)``, whose names werkzeug spells
    in title case from the WSGI environ (``X-Unit``, ``Content-Type``) whatever case the client used."""
    return {name.replace("_", "-").title(): value for name, value in headers.items()}


def _remote_addr(headers: dict[str, str]) -> str | None:
    """The client's address: the last X-Forwarded-For hop, which the platform's front end appends (Azure App Service
    in Azure, the local host here); the port it may carry is dropped."""
    forwarded = next((v for k, v in headers.items() if k.lower() == "x-forwarded-for"), "")
    hop = forwarded.split(",")[-1].strip()
    if not hop:
        return None
    if hop.startswith("["):  # [v6]:port
        return hop[1:].split("]", 1)[0]
    if hop.count(":") == 1:  # v4:port
        return hop.split(":", 1)[0]
    return hop


def _query_from_url(url: str) -> dict[str, list[str]]:
    """Every query parameter with all its values, in order, from the request URL (the Functions host joins a
    repeated parameter into one value with commas in ``req.params``; the URL keeps them apart)."""
    query: dict[str, list[str]] = {}
    if "?" not in url:  # no query string (most requests): nothing to parse
        return query
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    return query


# ---------------------------------------------------------------------------------- prediction cache

_REDIS_EXAMPLE = "'<name>.redis.cache.windows.net:6380,password=<key>,ssl=True' or 'rediss://:<key>@<host>:6380'"


def _truthy(value: str, option: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ValueError(f"{option}={value!r} is neither True nor False")


def parse_redis_connection(text: str) -> dict[str, Any]:
    """A Redis connection string → keyword arguments for ``redis.Redis``.

    Two forms are accepted: the one the Azure portal shows for Azure Cache for Redis (StackExchange.Redis:
    ``host:port,password=...,ssl=True,abortConnect=False``; ``user=``, ``connectTimeout=`` and ``syncTimeout=``
    in ms are read, other options ignored) and a URL (``redis://[user:password@]host[:port][/db]``,
    ``rediss://`` for TLS). TLS without a port means 6380, as Azure Cache for Redis serves TLS there.
    A ValueError never quotes the password.
    """
    text = (text or "").strip()
    if not text:
        raise ValueError(f"it is empty; set it to the Redis connection string, e.g. {_REDIS_EXAMPLE}")
    options: dict[str, Any] = {}
    if "://" in text:
        url = urlsplit(text)
        if url.scheme not in ("redis", "rediss"):
            raise ValueError(f"the URL scheme {url.scheme!r} is not redis:// or rediss://; e.g. {_REDIS_EXAMPLE}")
        tls = url.scheme == "rediss"
        try:
            host, port = url.hostname, url.port
        except ValueError:
            raise ValueError(f"the port in the URL is not a number from 1 to 65535; e.g. {_REDIS_EXAMPLE}") from None
        if url.username:
            options["username"] = unquote(url.username)
        if url.password:
            options["password"] = unquote(url.password)
        db = url.path.strip("/")
        if db:
            if not db.isdigit():
                raise ValueError(f"the database {db!r} in the URL path is not a number, e.g. /0")
            options["db"] = int(db)
        query = {k.lower(): v[-1] for k, v in parse_qs(url.query).items()}
        if "ssl" in query:
            tls = _truthy(query["ssl"], "ssl")
    else:
        first, *rest = [part.strip() for part in text.split(",")]
        host, port, tls = first, None, False
        if first.count(":") == 1:
            host, port_text = first.split(":")
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"the port {port_text!r} is not a number from 1 to 65535; e.g. {_REDIS_EXAMPLE}")
            port = int(port_text)
        if "=" in host:
            raise ValueError(f"it does not start with host:port; e.g. {_REDIS_EXAMPLE}")
        for n, part in enumerate(rest, 2):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:  # not quoted: it may be a password written without password=
                raise ValueError(f"part {n} (after comma {n - 1}) is not name=value; e.g. {_REDIS_EXAMPLE}")
            key = key.strip().lower()
            if key == "password":
                options["password"] = value
            elif key == "user":
                options["username"] = value
            elif key == "ssl":
                tls = _truthy(value, "ssl")
            elif key in ("connecttimeout", "synctimeout"):
                if not value.strip().isdigit():
                    raise ValueError(f"{key}={value!r} is not a number of milliseconds")
                options["socket_connect_timeout" if key == "connecttimeout" else "socket_timeout"] = int(value) / 1000
    if not host:
        raise ValueError(f"it names no host; e.g. {_REDIS_EXAMPLE}")
    options.update(host=host, port=port or (6380 if tls else 6379), ssl=tls)
    return options


class PredictionCache:
    """Successful answers in Redis, keyed by model version + trigger + exact input. Never fails a request.

    Every Redis error or timeout (``timeout_s``, short) marks the cache down: the request goes on without it,
    the outage is logged once, and Redis is tried again after a back-off (1 s, doubling up to 30 s) by a
    single request; the first success logs the recovery.

    A miss costs the request one round trip (the GET): the answer is stored behind it (write-behind), by one
    writer thread that sends what has queued up meanwhile as one pipeline of SETs. Until it is written, an
    answer waiting in the queue is served from there (a hit, no round trip), so the next identical request
    finds it. :meth:`stats` waits (briefly) for the queue to drain, so its counts include what was queued.
    """

    def __init__(self, setting: str, connection: str, *, ttl_seconds: int, max_value_bytes: int = CACHE_MAX_VALUE_BYTES,
                 timeout_s: float = CACHE_TIMEOUT_S) -> None:
        import redis  # the app's requirements have it when the cache is configured

        options = parse_redis_connection(connection)
        self.setting = setting
        self.ttl_seconds = int(ttl_seconds)
        self.max_value_bytes = max_value_bytes
        self.where = f"{'rediss' if options['ssl'] else 'redis'}://{options['host']}:{options['port']}"
        kwargs: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, **options}
        try:  # one attempt per call: the back-off below is the retry
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            kwargs["retry"] = Retry(NoBackoff(), 0)
        except ImportError:  # pragma: no cover - redis-py < 4.1
            pass
        self._client = redis.Redis(**kwargs)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = CACHE_BACKOFF_S[0]
        self.hits = self.misses = self.stored = self.too_large = self.bypassed = self.outages = self.dropped = 0
        self.last_error: str | None = None
        # Write-behind: answers to store (key -> value), and those being written now (served from here too).
        self._queued: dict[str, bytes] = {}
        self._writing: dict[str, bytes] = {}
        self._wake = threading.Condition(threading.Lock())
        self._writer: threading.Thread | None = None

    # ---------------------------------------------------------------- availability

    def _usable(self) -> bool:
        if self._down_since is None:
            return True
        with self._lock:
            if self._down_since is None:
                return True
            now = time.monotonic()
            if now < self._retry_at:
                return False
            self._retry_at = now + self._backoff  # this request probes; the others keep going without Redis
            return True

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            self.last_error = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
                self._backoff = CACHE_BACKOFF_S[0]
                self.outages += 1
            else:
                self._backoff = min(self._backoff * 2, CACHE_BACKOFF_S[1])
            self._retry_at = time.monotonic() + self._backoff
        if first:
            cache_logger.warning("Redis cache at %s is unavailable (%s): scoring without the cache, trying it "
                                 "again later", self.where, self.last_error)
        else:
            cache_logger.debug("Redis cache at %s still unavailable (%s)", self.where, self.last_error)

    def _succeeded(self, started: float) -> None:
        """A call that began at ``started`` (monotonic) answered. One sent before the outage was noticed says nothing
        about Redis now (it was answered just before Redis went): only a later one ends the outage."""
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None or started < self._down_since:
                return
            down_for = time.monotonic() - self._down_since
            self._down_since, self._backoff, self.last_error = None, CACHE_BACKOFF_S[0], None
        cache_logger.warning("Redis cache at %s is reachable again (down for %.1f s)", self.where, down_for)

    # ---------------------------------------------------------------- get / put

    def get(self, key: str) -> bytes | None:
        waiting = self._queued.get(key) or self._writing.get(key)  # (dict reads are atomic)
        if waiting is not None:
            self.hits += 1
            return waiting
        if not self._usable():
            self.bypassed += 1
            return None
        started = time.monotonic()
        try:
            value = self._client.get(key)
        except self._errors as e:
            self._failed(e)
            self.bypassed += 1
            return None
        self._succeeded(started)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: bytes) -> bool:
        """Queue an answer to be stored (the writer thread stores it); False when it will not be."""
        if len(value) > self.max_value_bytes:
            self.too_large += 1
            cache_logger.info("not caching an answer of %d bytes (the limit is %d bytes)", len(value),
                              self.max_value_bytes)
            return False
        if not self._usable():
            return False
        with self._wake:
            if len(self._queued) >= CACHE_MAX_PENDING:
                self.dropped += 1
                return False
            self._queued[key] = value
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_behind, name="modelfunc-cache-writer",
                                                daemon=True)
                self._writer.start()
            self._wake.notify_all()
        return True

    def _write_behind(self) -> None:
        while True:
            with self._wake:
                while not self._queued:
                    self._wake.wait()
                self._writing, self._queued = self._queued, {}
            batch = self._writing
            started = time.monotonic()
            try:
                pipe = self._client.pipeline(transaction=False)
                for key, value in batch.items():
                    pipe.set(key, value, ex=self.ttl_seconds)
                pipe.execute()
            except self._errors as e:
                self._failed(e)
            else:
                self._succeeded(started)
                self.stored += len(batch)
            with self._wake:
                self._writing = {}
                self._wake.notify_all()

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every queued answer was written (or failed); False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._queued or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def stats(self) -> dict[str, Any]:
        self.flush()
        return {"backend": "redis", "where": self.where, "state": "down" if self._down_since is not None else "up",
                "hits": self.hits, "misses": self.misses, "stored": self.stored, "too_large": self.too_large,
                "pending": len(self._queued) + len(self._writing), "dropped": self.dropped,
                "bypassed": self.bypassed, "outages": self.outages, "last_error": self.last_error,
                "ttl_seconds": self.ttl_seconds, "max_value_bytes": self.max_value_bytes}


def model_version(root: Path, entry_script: Path, model_dir: Path) -> str:
    """A digest of what decides the answers: the entry script, every file of its source directory shipped beside
    it (modules, data files read through ``__file__``, the app's requirements), the model files. Not the files
    that only wire the app to its host (function_app.py, host.json, local settings, this shim, the OpenAPI
    builder and its inferred schemas), nor hidden ones.

    ``MODELFUNC_MODEL_VERSION`` (an app setting) replaces it, e.g. for a model too large to hash at start.
    """
    explicit = os.environ.get("MODELFUNC_MODEL_VERSION", "").strip()
    if explicit:
        return "v-" + hashlib.sha256(explicit.encode()).hexdigest()[:32]
    digest = hashlib.sha256()
    files = [entry_script]
    wiring = {"function_app.py", "host.json", "local.settings.json", Path(__file__).name,
              "modelfunc_openapi.py", "modelfunc_openapi.json"}  # the OpenAPI document describes, never answers
    files += sorted(p for p in root.rglob("*") if p.is_file() and p != entry_script
                    and p.relative_to(root).as_posix() not in wiring
                    and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts)
                    and model_dir not in p.parents)
    files += sorted(p for p in model_dir.rglob("*") if p.is_file())
    for path in files:
        rel = path.relative_to(root).as_posix().encode()
        digest.update(len(rel).to_bytes(4, "big") + rel)
        with open(path, "rb") as f:
            file_digest = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b""):  # noqa: B023 - f is this iteration's file
                file_digest.update(chunk)
        digest.update(file_digest.digest())
    return digest.hexdigest()[:32]


class EntryScript:
    """One loaded score.py and everything needed to call it the way Azure ML does."""

    def __init__(self, script: str | os.PathLike[str], *, model_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(script).resolve()
        if model_dir is not None:
            os.environ["AZUREML_MODEL_DIR"] = str(Path(model_dir).resolve())
        self.model_dir = Path(model_dir).resolve() if model_dir is not None else self.path.parent / "model"
        self.cache: PredictionCache | None = None
        self.cache_off: str | None = None  # why a configured cache is not used
        self.version: str | None = None
        if not self.path.is_file():
            raise EntryScriptError(f"entry script {self.path} does not exist")
        self._reset_rawhttp_flags()
        module_name = f"modelfunc_entry_{uuid.uuid4().hex[:8]}"
        spec = importlib.util.spec_from_file_location(module_name, self.path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        script_dir = str(self.path.parent)
        if script_dir not in sys.path:
            sys.path.insert(0, script_dir)  # score.py may import modules that sit beside it
        try:  # azureml.core's Model.get_model_path for score.py, found in AZUREML_MODEL_DIR (the file beside this one)
            from . import modelfunc_azureml_compat as azureml_compat  # type: ignore[attr-defined]  # in the package
        except ImportError:
            import modelfunc_azureml_compat as azureml_compat  # type: ignore[no-redef]  # in an app
        azureml_compat.install()
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

    def enable_cache(self, setting: str, ttl_seconds: int) -> None:
        """Cache successful answers in the Redis whose connection string is in app setting ``setting``.

        Any reason not to (the setting empty, no redis package, a malformed string, a run() whose answer
        depends on more than the input bytes) is logged once and the app runs uncached.
        """
        reason = None
        if self.style == "rawhttp" or self.wants_headers:
            reason = ("run() reads the request (@rawhttp) or its headers, so its answer may depend on more than "
                      "the input: predictions are not cached")
        elif not os.environ.get(setting, "").strip():
            reason = (f"app setting {setting} is not set: predictions are not cached (set it to the Redis "
                      f"connection string, e.g. {_REDIS_EXAMPLE})")
        else:
            try:
                self.cache = PredictionCache(setting, os.environ[setting], ttl_seconds=ttl_seconds)
            except ImportError:
                reason = ("the redis package is not installed: predictions are not cached (modelfunc package "
                          "adds redis to the app's requirements; pip install redis)")
            except ValueError as e:
                reason = (f"app setting {setting} is not a usable Redis connection string: {e}; "
                          "predictions are not cached")
        if reason:
            self.cache_off = reason
            cache_logger.warning("cache: %s", reason)
        else:
            cache_logger.info("cache: answers are cached in %s for %d s (connection from app setting %s)",
                              self.cache.where, ttl_seconds, setting)

    def cache_stats(self) -> dict[str, Any] | None:
        if self.cache is not None:
            return {**self.cache.stats(), "model_version": self.version}
        if self.cache_off:
            return {"backend": "redis", "state": "off", "reason": self.cache_off}
        return None

    def _cache_key(self, kind: str, body: bytes, method: str, headers: dict[str, str],
                   query: dict[str, list[str]] | None) -> str:
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "") or ""
        digest = hashlib.sha256()
        for part in (kind.encode(), method.encode(), ctype.split(";", 1)[0].strip().lower().encode(),
                     json.dumps(sorted((query or {}).items())).encode() if method == "GET" else b"", body):
            digest.update(len(part).to_bytes(8, "big") + part)
        return f"modelfunc:{kind}:{self.version}:{digest.hexdigest()}"

    def _do_init(self) -> None:
        started = time.perf_counter()
        try:
            if self.cache is not None:
                self.version = model_version(self.path.parent, self.path, self.model_dir)
                cache_logger.info("cache: model version %s (digest of the entry script, modules and model files)",
                                  self.version)
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
            raise EntryScriptError(f"init() of {self.path.name} did not finish within {timeout:.0f} s"
                                   + _thread_stack("modelfunc-init", "init() is at"))
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
        kind: str = "http",
        remote_addr: str | None = None,
    ) -> Outcome:
        """Score one input. Never raises for a user or input error: the Outcome says what happened.

        ``kind`` (the trigger: http, blob, message) is part of the cache key. ``remote_addr`` is the client's
        address (``request.remote_addr`` in score.py); by default it is read from X-Forwarded-For.
        """
        headers = dict(headers or {})
        if remote_addr is None:
            remote_addr = _remote_addr(headers)
        started = time.perf_counter()
        try:
            if not self._ready.is_set() or self._init_error is not None:  # else ready: no lock to take per call
                self.wait_ready()
        except EntryScriptError as ex:
            error_id = uuid.uuid4().hex
            logger.error("[%s] %s", error_id, ex)
            return Outcome(503, _error_body(f"The model is not available: {ex}", error_id),
                           {"content-type": "application/json"}, error_id)
        cache, key = self.cache, None
        if cache is not None and method in ("POST", "GET"):
            key = self._cache_key(kind, body, method, headers, query)
            cached = cache.get(key)
            if cached is not None:
                elapsed = (time.perf_counter() - started) * 1000
                cache_logger.info("cache hit (%s input of %d bytes, key …%s) in %.2f ms", kind, len(body), key[-12:],
                                  elapsed)
                return Outcome(200, cached, {"content-type": "application/json", "x-modelfunc-cache": "hit"},
                               elapsed_ms=elapsed)
        try:
            outcome = self._score(body, method=method, headers=headers, query=query, url=url, started=started,
                                  kind=kind, remote_addr=remote_addr)
        except RecursionError:  # input the parsers below cannot take (nested too deeply): the input's fault
            bad = _too_deep()
            outcome = Outcome(bad.status, _error_body(str(bad)), {"content-type": "application/json"})
        except Exception as ex:  # noqa: BLE001 - never raise for an input: a fault of this shim is a 500 with an id
            code = getattr(ex, "code", None)
            if isinstance(code, int) and 400 <= code < 500 and hasattr(ex, "description"):
                # werkzeug refused the request while reading it (a multipart body of more than its max_form_parts,
                # 413): the request's fault, answered with werkzeug's status, as Flask (and so azmlinfsrv) answers it.
                outcome = Outcome(code, _error_body(str(ex.description)), {"content-type": "application/json"})
            else:
                error_id = uuid.uuid4().hex
                logger.error("[%s] the runtime failed on a %s input of %d bytes:\n%s", error_id, kind, len(body),
                             traceback.format_exc())
                outcome = Outcome(500, _error_body(f"The runtime failed ({type(ex).__name__}); see the log for error "
                                                   f"id {error_id}", error_id), {"content-type": "application/json"},
                                  error_id)
        if key is not None and cache is not None:
            stored = outcome.status == 200 and outcome.headers.get("x-modelfunc-cacheable") == "1" and cache.put(
                key, outcome.body)
            cache_logger.info("cache miss (%s input of %d bytes, key …%s): scored in %.2f ms, status %d, %s", kind,
                              len(body), key[-12:], outcome.elapsed_ms, outcome.status,
                              "to be stored" if stored else "not stored")
            outcome.headers["x-modelfunc-cache"] = "miss"
        outcome.headers.pop("x-modelfunc-cacheable", None)
        return outcome

    def _score(self, body: bytes, *, method: str, headers: dict[str, str], query: dict[str, list[str]] | None,
               url: str, started: float, kind: str = "http", remote_addr: str | None = None) -> Outcome:
        context = _request_context(self.style, body, method=method, headers=headers, url=url, remote_addr=remote_addr)
        if context is not None:
            context.push()  # flask.request, jsonify, make_response, send_file work in run(), as under azmlinfsrv
        try:
            return self._score_in_context(body, method=method, headers=headers, query=query, url=url, kind=kind,
                                          request=context.request if context is not None else None, started=started,
                                          remote_addr=remote_addr)
        finally:
            if context is not None:
                context.pop()

    def _score_in_context(self, body: bytes, *, method: str, headers: dict[str, str],
                          query: dict[str, list[str]] | None, url: str, kind: str, request: Any, started: float,
                          remote_addr: str | None) -> Outcome:
        if method == "OPTIONS" and self.style != "rawhttp":
            # azmlinfsrv answers OPTIONS itself (200, empty) unless run() takes the raw request.
            return Outcome(200, b"", {"content-type": "text/html; charset=utf-8"})
        try:
            kwargs = self._arguments(body, method=method, headers=headers, query=query or {}, url=url, kind=kind,
                                     request=request, remote_addr=remote_addr)
        except BadInput as ex:
            return Outcome(ex.status, _error_body(str(ex)), {"content-type": "application/json"})
        if self.wants_headers:
            kwargs["request_headers"] = _request_headers(headers)
        run_started = time.perf_counter()
        try:
            result = self._run(**kwargs)
        except Exception as ex:  # noqa: BLE001 - user code
            elapsed = (time.perf_counter() - run_started) * 1000
            if isinstance(ex, RecursionError) and _in_json_decoder(ex):
                # run() (or flask's request.get_json in it) parsed the input and the parser ran out of stack: the
                # input is the problem, whoever parsed it (azmlinfsrv: 500).
                bad = _too_deep()
                return Outcome(bad.status, _error_body(str(bad)), {"content-type": "application/json"},
                               elapsed_ms=elapsed)
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
        if not _is_response(result) and outcome.status == 200:
            outcome.headers["x-modelfunc-cacheable"] = "1"  # a JSON answer of run() itself: safe to cache
        outcome.elapsed_ms = elapsed
        outcome.headers["x-ms-run-fn-exec-ms"] = f"{elapsed:.3f}"
        if outcome.status >= 500 and _is_response(result):  # as azmlinfsrv marks a failing answer of run()
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
                   url: str, kind: str = "http", request: Any = None, remote_addr: str | None = None) -> dict[str, Any]:
        first = self.params[0].name
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if self.style == "rawhttp":
            if request is None:  # no Flask request context (Flask missing): build the request on its own
                request = _aml_request(body, method=method, headers=headers, url=url, remote_addr=remote_addr)
            return {first: request}
        if method == "GET":
            parsed = {k: _parse_json_or_text(v[0]) if len(v) == 1 else [_parse_json_or_text(x) for x in v]
                      for k, v in query.items()}
            if self.style == "json":
                return {first: json.dumps(parsed)}
            return self._schema_arguments(parsed)
        if method != "POST":
            raise BadInput("Method not allowed", 405)  # azmlinfsrv's answer to a method run() cannot take
        if self.style == "json":
            if request is not None and kind == "http":
                # What azmlinfsrv gives run(): flask's request.data, which is empty for a form or multipart body
                # (werkzeug has parsed it into request.form and request.files).
                body = request.data
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as ex:
                raise BadInput(f"Input cannot be decoded as UTF-8: {ex}") from None
            if kind != "http" and _is_json_content_type(ctype):
                # A blob or message that is not JSON gets a 400 error record. Over HTTP run() gets the text as it is,
                # as under azmlinfsrv: it may parse it itself, or answer its own error.
                _loads(text)
            return {first: text}
        # From here on azmlinfsrv's own rules and words (input_parsers.ObjectInput), so that the answers match.
        if not _is_json_content_type(ctype) and (ctype or kind == "http"):
            # flask's is_json; a blob or message without a content type is taken as JSON.
            raise BadInput("Expects Content-Type to be application/json", 415)
        parsed = _loads_bytes(body)
        if not isinstance(parsed, dict):
            raise BadInput("POST body should be a JSON dictionary.")
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
            if getattr(result, "direct_passthrough", False):  # send_file(): a file wrapper, read it here
                result.direct_passthrough = False
            try:
                body = result.get_data()
                pairs = list(result.headers.items())
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            status = int(result.status_code)
            headers, cookies = _combine_headers(pairs)
            if _no_body(status):  # 204, 304: the headers as run() set them, but no body (AMLResponse(None) has {})
                body = b""
            if status == 304:  # werkzeug sends a 304 without its entity headers (Content-Type, ...)
                from werkzeug.http import is_entity_header

                headers = {k: v for k, v in headers.items()
                           if not is_entity_header(k) or k in ("expires", "content-location")}
            headers.pop("content-length", None)  # the host counts the body it sends
            return Outcome(status, body, headers, cookies=cookies)
        if result is None:  # azmlinfsrv answers {} for a run() that returns nothing
            return Outcome(200, b"{}", {"content-type": "application/json"})
        try:
            body = json.dumps(result, default=_json_default).encode()
        except (TypeError, ValueError, RecursionError) as ex:
            error_id = uuid.uuid4().hex
            logger.error("[%s] run() output could not be serialized: %s", error_id, ex)
            return Outcome(500, _error_body(f"run() returned output that is not JSON: {ex}", error_id),
                           {"content-type": "application/json"}, error_id)
        return Outcome(200, body, {"content-type": "application/json"})

    # ------------------------------------------------------------------ triggers

    def handle_http(self, req: Any) -> Any:
        """An HTTP trigger invocation: azure.functions.HttpRequest → HttpResponse."""
        import azure.functions as func

        query = _query_from_url(req.url) or {k: [v] for k, v in req.params.items()}
        outcome = self.invoke(req.get_body() or b"", method=req.method.upper(), headers=dict(req.headers),
                              query=query, url=req.url)
        headers = dict(outcome.headers)
        deployment = deployment_id()
        if deployment:
            headers[DEPLOYMENT_HEADER] = deployment
        # The content type stays a header: HttpResponse's mimetype would get "; charset=utf-8" appended to a text/*
        # type that already names its charset.
        resp = func.HttpResponse(body=outcome.body, status_code=outcome.status, headers=headers,
                                 mimetype=headers.get("content-type") or "application/octet-stream")
        for cookie in outcome.cookies:  # each becomes a cookie of its own in the library's converter
            resp.headers.add("Set-Cookie", cookie)
        return resp

    def handle_blob(self, blob: Any, output: Any, error: Any, stamp: Any = None) -> Outcome:
        """A blob trigger invocation: the result goes to ``output``, a failure to ``error`` (never raised);
        ``stamp`` (when the deployment has an id) gets which deployment answered."""
        data = blob.read()
        name = getattr(blob, "name", None) or "blob"
        props = getattr(blob, "blob_properties", None) or {}
        ctype = props.get("ContentType") or props.get("contentType") or ""
        if not ctype or ctype == "application/octet-stream":  # what most uploads get: judge by the name
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        outcome = self.invoke(data, method="POST", headers={"x-ms-blob-name": name, "content-type": ctype,
                                                            "content-length": str(len(data))},
                              url=f"http://localhost/blob/{name}", kind="blob")
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
        deployment = deployment_id()
        if stamp is not None and deployment:
            stamp.set(json.dumps({"deployment": deployment, "blob": name, "status": outcome.status}).encode())
        return outcome

    def handle_message(self, msg: Any, output: Any, stamp: Any = None) -> Outcome:
        """A Service Bus queue message: the result is sent to the output queue; a failure raises so the
        message is retried and then dead-lettered (the queue's own error record). ``stamp`` (when the
        deployment has an id) gets which deployment answered and the answer's SHA-256."""
        body = msg.get_body()
        headers = {"content-length": str(len(body))}
        if getattr(msg, "content_type", None):  # a message without one reaches run() without one
            headers["content-type"] = msg.content_type
        outcome = self.invoke(body, method="POST", headers=headers, url="http://localhost/message", kind="message")
        if not outcome.ok:
            raise RuntimeError(
                f"scoring message {getattr(msg, 'message_id', '')} failed with status {outcome.status}: "
                + outcome.body.decode("utf-8", "replace")
            )
        output.set(outcome.body)  # bytes, as run() answered (binary included): the output converter takes them
        deployment = deployment_id()
        if stamp is not None and deployment:
            stamp.set(json.dumps({"deployment": deployment, "message_id": getattr(msg, "message_id", None),
                                  "answer_sha256": hashlib.sha256(outcome.body).hexdigest()}).encode())
        return outcome

    def handle_openapi(self, req: Any) -> Any:
        """``GET /api/swagger.json[?version=2|3|3.1]``: the app's OpenAPI document, as azmlinfsrv serves its
        /swagger.json (built by modelfunc_openapi.py, beside this file in an HTTP-trigger app; docs/openapi.md)."""
        import azure.functions as func

        try:
            from . import modelfunc_openapi as openapi  # type: ignore[attr-defined]  # in the modelfunc package
        except ImportError:
            import modelfunc_openapi as openapi  # type: ignore[no-redef]  # in an app
        query = _query_from_url(req.url) or {k: [v] for k, v in req.params.items()}
        status, body = openapi.answer(self, (query.get("version") or [None])[0])
        headers = {"content-type": "application/json"}
        if deployment_id():
            headers[DEPLOYMENT_HEADER] = deployment_id()
        return func.HttpResponse(body=body, status_code=status, headers=headers, mimetype="application/json")


# Python's json module parses recursively: a document nested deeper than the interpreter's recursion limit
# (1,000 frames by default, less what is already on the stack) raises RecursionError, not a JSONDecodeError.
TOO_DEEP = ("The body is nested too deeply to be parsed as JSON (more levels of [ and {{ than the parser's limit of "
            "about {limit}); no model input is that deep")


def _too_deep() -> BadInput:
    return BadInput(TOO_DEEP.format(limit=sys.getrecursionlimit()))


def _thread_stack(name: str, heading: str) -> str:
    """Where the thread called ``name`` is now (its innermost frames), for an error that says what is stuck."""
    thread = next((t for t in threading.enumerate() if t.name == name), None)
    frame = sys._current_frames().get(thread.ident) if thread is not None and thread.ident else None
    if frame is None:
        return ""
    frames = [f for f in traceback.extract_stack(frame) if not f.filename.endswith(("threading.py", __file__))]
    return f"; {heading} (most recent call last):\n" + "".join(traceback.format_list(frames[-12:])).rstrip()


def _in_json_decoder(ex: BaseException) -> bool:
    """Whether an exception was raised inside the standard library's JSON decoder (its innermost frame)."""
    frames = traceback.extract_tb(ex.__traceback__)
    return bool(frames) and Path(frames[-1].filename).parent.name == "json" and \
        Path(frames[-1].filename).name in ("decoder.py", "__init__.py")


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as ex:
        if not text.strip():
            raise BadInput("The body is empty; send the input as JSON") from None
        raise BadInput(f"The body is not valid JSON: {ex}") from None


def _loads_bytes(body: bytes) -> Any:
    """A JSON body as azmlinfsrv reads one for @input_schema: ``json.loads`` on the bytes, which takes UTF-8 with or
    without a byte-order mark, UTF-16 and UTF-32."""
    try:
        return json.loads(body)
    except RecursionError:
        raise _too_deep() from None
    except UnicodeDecodeError as ex:
        raise BadInput(f"Input cannot be decoded as UTF-8, UTF-16 or UTF-32: {ex}") from None
    except json.JSONDecodeError as ex:
        if not body:
            raise BadInput("POST body is empty. Expecting a JSON dictionary.") from None
        raise BadInput(f"POST body could not be decoded as JSON: {ex}") from None


def _parse_json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except (ValueError, RecursionError):  # too deep for the parser: kept as the text it is
        return value


_REQUEST_CLASS: Any = None
_FLASK_APPS: dict[str, Any] = {}


def _request_class() -> Any:
    """``AMLRequest`` (a flask Request) with flask.Request's constructor: what @rawhttp run() receives."""
    global _REQUEST_CLASS
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
    return _REQUEST_CLASS


def _environ(body: bytes, *, method: str, headers: dict[str, str], url: str, remote_addr: str | None
             ) -> dict[str, Any]:
    """The WSGI environ of the invocation, as a WSGI server (gunicorn under azmlinfsrv) would have built it."""
    from werkzeug.test import EnvironBuilder

    env = EnvironBuilder(url, method=method, headers=list(headers.items()), data=body,
                         environ_base={"REMOTE_ADDR": remote_addr or ""}).get_environ()
    length = next((v for k, v in headers.items() if k.lower() == "content-length"), None)
    if length is None:
        env.pop("CONTENT_LENGTH", None)  # e.g. a chunked request: the header says so, as the client sent it
    else:
        env["CONTENT_LENGTH"] = length  # as sent, 0 included (EnvironBuilder leaves a 0 out)
    # The body is already whole (the host de-chunked it): werkzeug must read it as it is, never de-chunk it again.
    env["wsgi.input_terminated"] = True
    return env


def _flask_app(style: str) -> Any:
    """The Flask app whose request context run() is called in (None when Flask is not installed)."""
    app = _FLASK_APPS.get(style)
    if app is None:
        try:
            import flask
        except ImportError:
            _FLASK_APPS[style] = False
            return None
        app = flask.Flask("modelfunc_entry_script")
        if style == "rawhttp":
            app.request_class = _request_class()
        _FLASK_APPS[style] = app
    return app or None


def _request_context(style: str, body: bytes, *, method: str, headers: dict[str, str], url: str,
                     remote_addr: str | None) -> Any:
    app = _flask_app(style)
    if app is None:
        return None
    return app.request_context(_environ(body, method=method, headers=headers, url=url, remote_addr=remote_addr))


def _aml_request(body: bytes, *, method: str, headers: dict[str, str], url: str, remote_addr: str | None = None
                 ) -> Any:
    """An ``AMLRequest`` (a flask Request) carrying the invocation, as azmlinfsrv passes to @rawhttp run()."""
    return _request_class()(_environ(body, method=method, headers=headers, url=url, remote_addr=remote_addr))


def load(app_file: str | os.PathLike[str], *, entry_script: str = "score.py", model_dir: str = "model",
         cache_setting: str | None = None, cache_ttl_seconds: int | None = None) -> EntryScript:
    """Load the app's entry script (next to function_app.py) and start init() in the background.

    ``cache_setting`` names the app setting with the Redis connection string (``cache:`` in modelfunc.yaml):
    successful answers are then cached there for ``cache_ttl_seconds``.
    """
    root = Path(app_file).resolve().parent
    entry = EntryScript(root / entry_script, model_dir=root / model_dir)
    if cache_setting:
        entry.enable_cache(cache_setting, cache_ttl_seconds or 3600)
    entry.start_init()
    return entry


SELFTEST_MARK = "MODELFUNC-SELFTEST "
LOCK_NAME = "requirements.lock"  # appenv.LOCK_NAME: written beside this file by `modelfunc package`


def locked_versions(app_dir: str | os.PathLike[str] | None = None) -> dict[str, str | None] | None:
    """{name: the version this process imports} for every package of the app's lock (None: not importable), read
    from the installed distributions this interpreter finds first — what the app really runs, to be compared with
    the lock. None when the app has no lock."""
    import re
    from importlib.metadata import PackageNotFoundError, version

    lock = Path(app_dir or Path(__file__).resolve().parent) / LOCK_NAME
    try:
        text = lock.read_text(encoding="utf-8")
    except OSError:
        return None
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if m:
            key = re.sub(r"[-_.]+", "-", m.group(1)).lower()  # PEP 503, as packaging.utils.canonicalize_name
            try:
                out[key] = version(m.group(1))
            except PackageNotFoundError:
                out[key] = None
    return out


class _Out:
    """What the Python worker passes for an output binding (``azure.functions.Out``): holds what the function set."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


def _answer(status: int, body: bytes | str | None) -> dict[str, Any]:
    data = body.encode("utf-8") if isinstance(body, str) else body or b""
    return {"status": status, "body": data.decode("utf-8", "replace"), "sha256": hashlib.sha256(data).hexdigest(),
            "body_base64": base64.b64encode(data).decode("ascii")}


def _through_function(function: Any, data: bytes, sample: str, ctype: str) -> dict[str, Any]:
    """Call the app's own function with the objects the Python worker builds for its trigger: the function's
    decorators, bindings and conversions are part of what is tested."""
    import azure.functions as func
    from azure.functions.decorators.core import BindingDirection

    trigger = function.get_trigger()
    out = (BindingDirection.OUT, BindingDirection.OUT.value)  # the library keeps the enum's value
    outs = {b.name: _Out() for b in function.get_bindings() if b.direction in out}
    kind = trigger.get_binding_name()
    name = Path(sample).name
    if kind == "httpTrigger":
        route = trigger.get_dict_repr().get("route") or function.get_function_name()
        req = func.HttpRequest(method="POST", url=f"http://localhost/api/{route}", headers={"content-type": ctype},
                               params={}, route_params={}, body=data)
        resp = function.get_user_function()(**{trigger.name: req})
        return _answer(resp.status_code, resp.get_body())
    if kind == "blobTrigger":
        stream = func.blob.InputStream(data=data, name=f"selftest/{name}", length=len(data),
                                       blob_properties={"ContentType": ctype})
        function.get_user_function()(**{trigger.name: stream}, **outs)
        output, error = outs.get("output"), outs.get("error")
        if output is not None and output.get() is not None:
            return _answer(200, output.get())
        record = json.loads(error.get()) if error is not None and error.get() is not None else {}
        return {**_answer(int(record.get("status") or 500), error.get() if error is not None else None),
                "error": f"the function wrote an error record: {json.dumps(record.get('response'))}"}
    if kind == "serviceBusTrigger":
        from azure.functions.servicebus import ServiceBusMessage  # the trigger's message, as the worker builds it

        msg = ServiceBusMessage(body=data, content_type=ctype, message_id="selftest", application_properties={},
                                user_properties={})
        try:
            function.get_user_function()(**{trigger.name: msg}, **outs)
        except Exception as ex:  # noqa: BLE001 - the message would be retried, then dead-lettered
            return {**_answer(500, None), "error": f"the function raised {type(ex).__name__}: {ex}"}
        return _answer(200, outs["output"].get())
    raise EntryScriptError(f"the self-test cannot call a {kind} function")


def selftest(sample: str, function_name: str | None = None) -> int:
    """``python -m modelfunc_runtime selftest SAMPLE [FUNCTION]`` in the app directory: import the app as the
    Functions worker does (indexing its functions), wait for init(), then score SAMPLE twice: ``direct`` calls
    run() through the entry-script contract alone (no cache, no function), ``function`` calls the app's function
    FUNCTION (default: the first) with what the worker would pass it. Prints one result line."""
    started = time.perf_counter()
    try:
        sys.path.insert(0, os.getcwd())
        import importlib

        app_module = importlib.import_module("function_app")
        functions = {f.get_function_name(): f for f in app_module.app.get_functions()}
        function = functions[function_name] if function_name else next(iter(functions.values()))
        entry = app_module.entry
        entry.wait_ready()
        data = Path(sample).read_bytes()
        ctype = mimetypes.guess_type(sample)[0] or "application/octet-stream"
        cache, entry.cache = entry.cache, None
        try:
            outcome = entry.invoke(data, headers={"content-type": ctype})
        finally:
            entry.cache = cache
        direct = _answer(outcome.status, outcome.body)
        through = _through_function(function, data, sample, ctype)
        result = {"ok": outcome.ok and through["status"] == 200, "status": through["status"],
                  "functions": list(functions), "style": entry.style, "body": through["body"],
                  "direct": direct, "function": through, "environment": locked_versions(os.getcwd()),
                  "elapsed_ms": round((time.perf_counter() - started) * 1000, 1)}
    except BaseException as ex:  # noqa: BLE001 - every failure is the result
        result = {"ok": False, "error": f"{type(ex).__name__}: {ex}", "traceback": traceback.format_exc()}
    print(SELFTEST_MARK + json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "selftest":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        sys.exit(selftest(*sys.argv[2:]))
    print("usage: python -m modelfunc_runtime selftest SAMPLE [FUNCTION]", file=sys.stderr)
    sys.exit(2)
