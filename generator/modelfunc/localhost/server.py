"""The local host's HTTP side (uvicorn + starlette) and its lifecycle.

The limits a request must keep (body size, header and body rates, the admin API's key) are in limits.py.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import os
import re
import socket
import time
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import HostError
from .appsettings import MASTER_KEY_SETTING, choose_master_key
from .blobcommon import Out
from .httpio import RunPool, host_request, run_loop, to_starlette
from .limits import (
    BODY_LIMIT_SETTING,
    BODY_RATE_SETTING,
    DEFAULT_BODY_LIMIT,
    DEFAULT_BODY_RATE,
    DEFAULT_HEADERS_TIMEOUT,
    HEADERS_TIMEOUT_SETTING,
    MAX_HEADER_BYTES,
    Guard,
    RequestRefused,
    guarded_protocol,
    hostport,
    listen,
    number_setting,
    refusal,
)
from .loader import LoadedApp, LoadedFunction
from .workers import AdminForward, Counters, WorkerRole, admin_socket

if TYPE_CHECKING:
    from .blobs import BlobListener

logger = logging.getLogger("modelfunc.host")
ROUTE_PREFIX = "api"
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def _host_id(app_dir: Path) -> str:
    """The host id, derived as the Functions host derives it (ScriptHostIdProvider.GetDefaultHostId) from the app
    settings the app runs with (``load_app`` puts them in the environment). Blob receipts are kept per host id, so it
    decides which blobs an app has seen:

    * the ``AzureFunctionsWebHost__hostid`` setting when it is set (1-32 lower-case letters, digits, single dashes);
    * else the site name, as in Azure: ``WEBSITE_SITE_NAME`` (the app's name), with ``-<WEBSITE_SLOT_NAME>`` for a
      slot other than production — one id per app and per slot;
    * else, as ``func start`` does on a developer's machine, the machine name and a stable hash of the app's folder:
      two apps (two folders) never share an id, and an app keeps its id across restarts.

    Lower-cased, cut to 32 characters (the machine name is cut, never the hash), trailing dashes trimmed.
    """
    import hashlib

    explicit = os.environ.get("AzureFunctionsWebHost__hostid", "").strip()
    if explicit:
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?!-)){0,31}", explicit) or explicit.endswith("-"):
            raise HostError(f"AzureFunctionsWebHost__hostid: {explicit!r} is not a host id: 1-32 lower-case letters, "
                            "digits and dashes, not starting or ending with a dash, no two dashes in a row")
        return explicit
    site = os.environ.get("WEBSITE_SITE_NAME", "").strip()
    if site:
        slot = os.environ.get("WEBSITE_SLOT_NAME", "").strip()
        if slot and slot.lower() != "production":
            site += f"-{slot}"
        return site.lower()[:32].rstrip("-") or "modelfunc"
    digest = hashlib.sha256(str(app_dir.resolve()).encode("utf-8")).digest()
    stable = str(int.from_bytes(digest[:4], "big") & 0x7FFFFFFF)
    machine = "".join(c for c in socket.gethostname() if c.isascii() and c.isalnum()).lower() or "modelfunc"
    return f"{machine[: 32 - 1 - len(stable)]}-{stable}"


def _poison_threshold(app_dir: Path) -> int:
    try:
        host = json.loads((app_dir / "host.json").read_text(encoding="utf-8"))
        return int(host.get("extensions", {}).get("blobs", {}).get("poisonBlobThreshold", 5))
    except (OSError, ValueError, AttributeError):
        return 5


class HostServer:
    """Serve a loaded app: HTTP functions, blob listeners and the admin API."""

    def __init__(self, app: LoadedApp, *, host: str = "127.0.0.1", port: int = 7071,
                 poll_interval: float = 0.2, host_id: str | None = None, max_body_bytes: int | None = None,
                 headers_timeout: float | None = None, min_body_rate: float | None = None,
                 master_key: str | None = None, role: WorkerRole | None = None,
                 storage_log: str | Path | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        settings = app.settings
        # Limits: an argument, else the app setting, else the Functions host's (Kestrel's) default.
        self.max_body_bytes = int(max_body_bytes or number_setting(settings, BODY_LIMIT_SETTING, DEFAULT_BODY_LIMIT,
                                                                    integer=True))
        self.headers_timeout = headers_timeout or number_setting(settings, HEADERS_TIMEOUT_SETTING,
                                                                  DEFAULT_HEADERS_TIMEOUT)
        self.min_body_rate = min_body_rate or number_setting(settings, BODY_RATE_SETTING, DEFAULT_BODY_RATE)
        # The admin API's master key: required when one is set, or when the host is reachable from elsewhere.
        # (`modelfunc serve` chooses it, and masks it in a workflow's log, before it starts the host.)
        self.master_key, self.master_key_source = (master_key, "setting") if master_key else \
            choose_master_key(settings, host)
        self.state = "Initializing"
        self.errors: deque[str] = deque(maxlen=100)  # the recent ones, for /admin/host/status
        self.http: list[tuple[LoadedFunction, str, list[str]]] = []
        self.listeners: dict[str, BlobListener] = {}
        self.others: dict[str, LoadedFunction] = {}
        self.started = time.time()
        # One of several worker processes (workers.py): the HTTP invocations of all are counted in a shared file,
        # and the admin API is the primary's (another worker passes an admin request on to it).
        self.role = role
        self.counters = Counters(role.counters, role.count) if role is not None else None
        self.invocations = self.counters.get(role.index) if role is not None else 0  # a restarted worker goes on
        self.admin_forward = AdminForward(role.admin_socket) if role is not None and not role.primary else None
        host_id = host_id or _host_id(app.path)
        # A switch on the binding type of each function the app declares (the azure-functions library's names, not
        # modelfunc.yaml's triggers): any app may be served, so the host sorts them as the Functions host does.
        for f in app.functions.values():
            if f.trigger.type == "httpTrigger":
                route = f.trigger.data.get("route") or f.name
                methods = [str(m).upper() for m in (f.trigger.data.get("methods") or ["GET", "POST"])]
                self.http.append((f, route, methods))
            elif f.trigger.type == "blobTrigger":
                if role is not None and not role.primary:
                    continue  # the primary's alone: no blob is scored twice (another worker passes /admin on)
                from .blobs import BlobListener  # here: only a host with a blob trigger imports the storage SDK

                self.listeners[f.name] = BlobListener(
                    f, app.settings, host_id=host_id, poll_interval=poll_interval,
                    poison_threshold=_poison_threshold(app.path), on_error=self.errors.append,
                    storage_log=storage_log)
            else:
                self.others[f.name] = f
        self._fast: dict[str, Any] = {}  # path -> endpoint of the HTTP functions whose route has no parameter
        self._pool: RunPool | None = None
        self.asgi = Starlette(routes=self._routes(), lifespan=self._lifespan,
                              exception_handlers={RequestRefused: refusal})
        self.handler = Guard(self._dispatch, self)  # what uvicorn serves: the app behind the limits

    def _count(self) -> None:
        self.invocations += 1
        if self.role is not None:
            self.counters.set(self.role.index, self.invocations)  # type: ignore[union-attr]

    async def _dispatch(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A function's fixed route straight to its endpoint (one dict look-up instead of Starlette's middleware
        and route list: the same endpoint, the same Response, the same error answers); anything else to Starlette.
        """
        endpoint = self._fast.get(scope["path"]) if scope["type"] == "http" and not scope.get("root_path") else None
        if endpoint is None:
            if self.admin_forward is not None and scope["type"] == "http" and scope["path"].startswith("/admin"):
                return await self.admin_forward(scope, receive, send)
            return await self.asgi(scope, receive, send)
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except RequestRefused as exc:  # Starlette's exception handler for it
            response = refusal(request, exc)
        except Exception:  # Starlette's ServerErrorMiddleware: a bare 500, and the error goes on to uvicorn's log
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)

    # ------------------------------------------------------------------ routes

    def _routes(self) -> list[Route]:
        routes = [
            Route("/admin/host/status", self._status, methods=["GET"]),
            Route("/admin/functions", self._list_functions, methods=["GET"]),
            Route("/admin/functions/{name}", self._invoke, methods=["POST"]),
        ]
        for f, route, methods in self.http:
            # Every method reaches the endpoint, which answers one the function does not list as the Functions host
            # does (404); ASP.NET routing matches the route with a trailing slash too.
            endpoint = self._http_endpoint(f, methods)
            routes.append(Route(f"/{ROUTE_PREFIX}/{route}", endpoint, methods=ANY_METHOD, name=f.name))
            routes.append(Route(f"/{ROUTE_PREFIX}/{route}/", endpoint, methods=ANY_METHOD))
            if "{" not in route and ":" not in route:
                for path in (f"/{ROUTE_PREFIX}/{route}", f"/{ROUTE_PREFIX}/{route}/"):
                    self._fast.setdefault(path, endpoint)
        return routes

    def _http_endpoint(self, f: LoadedFunction, methods: list[str]):  # noqa: ANN202 - starlette endpoint
        arg = f.trigger.name
        allowed = set(methods)

        async def endpoint(request: Request) -> Response:
            if request.method not in allowed:
                # The Functions host's routing answers a method the function does not list with an empty 404
                # (azure-functions-host#10098), HEAD included (#11625).
                return Response(status_code=404)
            body = await request.body()
            req = host_request(request, body)
            self._count()
            try:
                resp = await self._thread_pool().run(functools.partial(f.user_function, **{arg: req}))
            except Exception:  # noqa: BLE001 - as the host: 500, details in the log only
                error_id = uuid.uuid4().hex
                logger.exception("[%s] function %s raised", error_id, f.name)
                return JSONResponse({"message": "The function failed", "error_id": error_id}, status_code=500)
            return to_starlette(resp)

        return endpoint

    def _thread_pool(self) -> RunPool:
        """The threads a synchronous function runs on, as the Python worker's: PYTHON_THREADPOOL_THREAD_COUNT of
        them when that app setting is set (1: one run() at a time), else ThreadPoolExecutor's default (min(32,
        CPUs + 4)); one more thread is started only when all are busy."""
        if self._pool is None:
            value = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
            self._pool = RunPool(int(value) if value.isdigit() and int(value) > 0 else None)
        return self._pool

    async def _status(self, request: Request) -> JSONResponse:
        listeners = {name: {"last_error": lst.last_error, **lst.stats.as_dict()}
                     for name, lst in self.listeners.items()}
        code = 200 if self.state == "Running" else 503
        body = {"state": self.state, "errors": list(self.errors)[-20:], "uptime_s": round(
            time.time() - self.started, 1), "http_invocations": self.invocations, "blob_listeners": listeners}
        if self.role is not None:
            body["http_invocations"] = self.counters.total()  # type: ignore[union-attr]
            body["workers"] = {"count": self.role.count, "restarts": self.counters.restarts()}  # type: ignore
        entry = getattr(self.app.module, "entry", None)
        cache = entry.cache_stats() if hasattr(entry, "cache_stats") else None
        if cache is not None:  # the prediction cache's hits, misses and state (modelfunc_runtime)
            body["cache"] = cache
        return JSONResponse(body, status_code=code)

    async def _list_functions(self, request: Request) -> JSONResponse:
        items = []
        for f in self.app.functions.values():
            d = f.describe()
            route = next((r for g, r, _ in self.http if g is f), None)
            if route:
                d["invoke_url"] = f"{request.base_url}{ROUTE_PREFIX}/{route}"
            items.append(d)
        return JSONResponse(items)

    async def _invoke(self, request: Request) -> Response:
        """POST /admin/functions/<name> {"input": "..."}: run a non-HTTP function once.

        The real host answers 202 with no body; here the outputs are returned too (200), since there
        is no queue to read them from offline.
        """
        name = request.path_params["name"]
        try:
            payload = json.loads(await request.body() or b"{}")
            if not isinstance(payload, dict) or not isinstance(payload.get("input", ""), str):
                raise ValueError("expected {\"input\": \"<string>\"}")
        except ValueError as e:
            return JSONResponse({"message": f"bad invoke body: {e}"}, status_code=400)
        data = payload.get("input", "")
        if name in self.listeners:
            from ..errors import NotFoundError, StorageError

            try:
                await run_in_threadpool(self.listeners[name].invoke, data)
            except NotFoundError as e:  # the blob named does not exist
                return JSONResponse({"message": str(e)}, status_code=404)
            except StorageError as e:  # the storage account failed: not the request's fault
                return JSONResponse({"message": str(e)}, status_code=502)
            except HostError as e:  # not a blob path of the trigger's container (a '..' segment, another container)
                return JSONResponse({"message": str(e)}, status_code=400)
            return JSONResponse({"function": name, "input": data}, status_code=202)
        f = self.others.get(name)
        if f is None:
            return JSONResponse({"message": f"no non-HTTP function named {name!r}",
                                 "functions": sorted(self.others) + sorted(self.listeners)}, status_code=404)
        if f.trigger.type != "serviceBusTrigger":
            return JSONResponse({"message": f"trigger {f.trigger.type} cannot be invoked locally"}, status_code=400)
        message = func.ServiceBusMessage(body=data.encode("utf-8"), content_type="application/json")
        outs = {b.name: Out() for b in f.outputs}
        self._count()
        try:
            await run_in_threadpool(f.user_function, **{f.trigger.name: message}, **outs)
        except Exception as e:  # noqa: BLE001 - the message would be retried, then dead-lettered
            error_id = uuid.uuid4().hex
            logger.exception("[%s] function %s raised", error_id, name)
            return JSONResponse({"function": name, "error": f"{type(e).__name__}: {e}", "error_id": error_id,
                                 "dead_lettered": True}, status_code=500)
        outputs = {}
        for b in f.outputs:
            out = outs[b.name]
            if out.is_set and b.type == "serviceBus":  # a message to a queue (a binding type, as above)
                value = out.value
                if isinstance(value, bytes):  # the message as text; one that is not UTF-8 (binary) in base64
                    try:
                        value = value.decode("utf-8")
                    except UnicodeDecodeError:
                        value = {"base64": base64.b64encode(value).decode("ascii")}
                outputs[b.data.get("queueName", b.name)] = value
        return JSONResponse({"function": name, "outputs": outputs})

    # ------------------------------------------------------------------ lifecycle

    def _lifespan(self, _app: Starlette):  # noqa: ANN202
        server = self

        class _Lifespan:
            async def __aenter__(self) -> None:
                pass

            async def __aexit__(self, *exc: object) -> None:
                server.state = "Stopping"
                await run_in_threadpool(server.stop_background)

        return _Lifespan()

    def start_background(self) -> None:
        """Wait for the app's init(), then start the blob listeners; a failure is a HostError."""
        started = []
        try:
            self.app.wait_ready()
            for listener in self.listeners.values():  # none in a worker other than the primary
                listener.start()
                started.append(listener)
        except HostError as e:
            self.state = "Error"
            self.errors.append(str(e))
            for listener in started:
                listener.stop()
            raise
        self.state = "Running"

    def stop_background(self) -> None:
        for listener in self.listeners.values():
            listener.stop()
        if self._pool is not None:
            self._pool.shutdown()

    def banner(self, base_url: str) -> str:
        lines = ["Functions:"]
        for f in self.app.functions.values():
            route = next((r for g, r, _ in self.http if g is f), None)
            if route:
                methods = next(m for g, _, m in self.http if g is f)
                lines.append(f"    {f.name}: [{','.join(methods)}] {base_url}/{ROUTE_PREFIX}/{route}")
            else:
                source = f.trigger.data.get("path") or f.trigger.data.get("queueName")
                lines.append(f"    {f.name}: {f.trigger.type} ({source})")
        return "\n".join(lines)

    def admin_line(self) -> str:
        """How the admin API is protected, for the start-up banner (the generated key is shown here, once)."""
        if self.master_key is None:
            return f"Admin API (/admin/...): open, as the host listens on {self.host} (this machine) only"
        how = "x-functions-key header or ?code="
        if self.master_key_source == "generated":
            return (f"Admin API (/admin/...): needs the master key, as the host listens on {self.host} ({how}); "
                    f"generated for this run (set {MASTER_KEY_SETTING} to choose it): {self.master_key}")
        return f"Admin API (/admin/...): needs the master key in app setting {MASTER_KEY_SETTING} ({how})"

    def environment(self) -> dict[str, str | None] | None:
        """{name: version} this process imports for each package of the app's lock (None: the app has no lock),
        asked of the app's own runtime shim, as the image's self-test asks it."""
        import sys

        runtime = sys.modules.get("modelfunc_runtime")
        locked = getattr(runtime, "locked_versions", None)
        return locked(self.app.path) if locked is not None else None

    def run(self, *, ready_file: str | Path | None = None, log_level: str = "warning") -> int:
        """Serve until SIGINT/SIGTERM. Returns a process exit code."""
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        role = self.role
        sock = listen(self.host, self.port) if role is None else role.listening_socket()
        port = sock.getsockname()[1]
        base_url = f"http://{hostport(self.host, port)}"
        sockets = [sock]
        try:
            self.start_background()
            if role is not None and role.primary:  # the admin API of every worker: see workers.py
                sockets.append(admin_socket(role.admin_socket))
        except HostError:
            sock.close()
            raise
        config = uvicorn.Config(self.handler, log_level=log_level, lifespan="on", access_log=False,
                                timeout_graceful_shutdown=30, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                                http=guarded_protocol(AutoHTTPProtocol, headers_timeout=self.headers_timeout))
        server = uvicorn.Server(config)
        if role is None or role.primary:
            print(self.banner(base_url), flush=True)
            print(self.admin_line(), flush=True)

        async def main() -> None:
            serve = asyncio.ensure_future(server.serve(sockets=sockets))
            while not server.started and not serve.done():
                await asyncio.sleep(0.05)
            if server.started:
                if ready_file:  # whole or not at all: a watcher may read it the moment it appears
                    tmp = Path(f"{ready_file}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps({"url": base_url, "state": self.state,
                                               "environment": self.environment()}))
                    tmp.replace(ready_file)
                if role is None:  # with several workers, the supervisor says it once all are up
                    print(f"Host running at {base_url} (state {self.state}); Ctrl+C stops it", flush=True)
            await serve

        try:
            run_loop(main())
        finally:
            if self.state != "Stopping":  # uvicorn never started: the lifespan did not stop them
                self.stop_background()
        return 0


