"""The local host's HTTP side (uvicorn + starlette) and its lifecycle."""

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
from typing import Any

import anyio
import azure.functions as func
import uvicorn
from azure.functions.http import HttpResponseConverter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import HostError
from .blobs import BlobListener, Out
from .loader import LoadedApp, LoadedFunction

logger = logging.getLogger("modelfunc.host")
ROUTE_PREFIX = "api"
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def _host_id(app_dir: Path) -> str:
    # The Functions host derives its id from the site name: lowercase, at most 32 characters.
    return (re.sub(r"[^a-z0-9-]", "-", app_dir.parent.name.lower()).strip("-") or "modelfunc")[:32]


def _poison_threshold(app_dir: Path) -> int:
    try:
        host = json.loads((app_dir / "host.json").read_text(encoding="utf-8"))
        return int(host.get("extensions", {}).get("blobs", {}).get("poisonBlobThreshold", 5))
    except (OSError, ValueError, AttributeError):
        return 5


def _host_request(request: Request, body: bytes) -> func.HttpRequest:
    """The HttpRequest the Python worker builds from what the Functions host sends it (azure-functions-host
    GrpcMessageConversionExtensions.ToRpcHttp): header names lower-cased, a repeated header or query parameter one
    value joined by commas (ASP.NET's StringValues.ToString()), the URL with its query string as the client sent it.
    In Azure, App Service's front end adds the client's address to X-Forwarded-For; so does this host."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    if request.client is not None:
        host = request.client.host
        hop = f"[{host}]:{request.client.port}" if ":" in host else f"{host}:{request.client.port}"
        headers["x-forwarded-for"] = f"{headers['x-forwarded-for']},{hop}" if "x-forwarded-for" in headers else hop
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        params[key] = f"{params[key]},{value}" if key in params else value
    return func.HttpRequest(method=request.method, url=str(request.url), headers=headers, params=params,
                            route_params=dict(request.path_params), body=body)


def _to_starlette(resp: Any) -> Response:
    if isinstance(resp, func.HttpResponse):
        # What the Python worker sends the host for it: the library's own converter (one value per header name, each
        # Set-Cookie a cookie of its own, a content type added when there is none).
        value = HttpResponseConverter.encode(resp, expected_type=None).value
        status = int(value["status_code"].value)
        body = value["body"].value or b""
        if status < 200 or status in (204, 304):  # Kestrel sends no body with these
            body = b""
        out = Response(body, status_code=status, headers={n: d.value for n, d in value["headers"].items()})
        for cookie in value.get("cookies") or []:
            for morsel in cookie.values():
                out.raw_headers.append((b"set-cookie", morsel.OutputString().encode("latin-1")))
        return out
    if isinstance(resp, (str, bytes)):
        return Response(resp, media_type="text/plain")
    if resp is None:
        return Response(status_code=204)
    return JSONResponse(resp)


class HostServer:
    """Serve a loaded app: HTTP functions, blob listeners and the admin API."""

    def __init__(self, app: LoadedApp, *, host: str = "127.0.0.1", port: int = 7071,
                 poll_interval: float = 0.2, host_id: str | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.state = "Initializing"
        self.errors: deque[str] = deque(maxlen=100)  # the recent ones, for /admin/host/status
        self.http: list[tuple[LoadedFunction, str, list[str]]] = []
        self.listeners: dict[str, BlobListener] = {}
        self.others: dict[str, LoadedFunction] = {}
        self.started = time.time()
        self.invocations = 0
        host_id = host_id or _host_id(app.path)
        for f in app.functions.values():
            if f.trigger.type == "httpTrigger":
                route = f.trigger.data.get("route") or f.name
                methods = [str(m).upper() for m in (f.trigger.data.get("methods") or ["GET", "POST"])]
                self.http.append((f, route, methods))
            elif f.trigger.type == "blobTrigger":
                self.listeners[f.name] = BlobListener(
                    f, app.settings, host_id=host_id, poll_interval=poll_interval,
                    poison_threshold=_poison_threshold(app.path), on_error=self.errors.append)
            else:
                self.others[f.name] = f
        self.asgi = Starlette(routes=self._routes(), lifespan=self._lifespan)

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
            req = _host_request(request, body)
            self.invocations += 1
            try:
                resp = await anyio.to_thread.run_sync(functools.partial(f.user_function, **{arg: req}),
                                                      limiter=self._thread_limiter())
            except Exception:  # noqa: BLE001 - as the host: 500, details in the log only
                error_id = uuid.uuid4().hex
                logger.exception("[%s] function %s raised", error_id, f.name)
                return JSONResponse({"message": "The function failed", "error_id": error_id}, status_code=500)
            return _to_starlette(resp)

        return endpoint

    def _thread_limiter(self) -> anyio.CapacityLimiter | None:
        """How many calls of a synchronous function may run at once: the Python worker's app setting
        PYTHON_THREADPOOL_THREAD_COUNT when it is set (1: one run() at a time), else the thread pool's default."""
        if not hasattr(self, "_limiter"):
            value = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
            self._limiter = anyio.CapacityLimiter(int(value)) if value.isdigit() and int(value) > 0 else None
        return self._limiter

    async def _status(self, request: Request) -> JSONResponse:
        listeners = {name: {"last_error": lst.last_error, **lst.stats.as_dict()}
                     for name, lst in self.listeners.items()}
        code = 200 if self.state == "Running" else 503
        body = {"state": self.state, "errors": list(self.errors)[-20:], "uptime_s": round(
            time.time() - self.started, 1), "http_invocations": self.invocations, "blob_listeners": listeners}
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
            try:
                await run_in_threadpool(self.listeners[name].invoke, data)
            except HostError as e:
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
        self.invocations += 1
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
            if out.is_set and b.type == "serviceBus":
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
            for listener in self.listeners.values():
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

    def run(self, *, ready_file: str | Path | None = None, log_level: str = "warning") -> int:
        """Serve until SIGINT/SIGTERM. Returns a process exit code."""
        # IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted connections only for TCP-protocol sockets.
        # Without it every keep-alive reply waits ~40 ms for the client's delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not 0 <= self.port <= 65535:
            sock.close()
            raise HostError(f"cannot listen on {self.host}:{self.port}: a port is a number from 0 to 65535",
                            hint="pass another --port (0 picks a free one)")
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            raise HostError(f"cannot listen on {self.host}:{self.port}: {e.strerror}",
                            hint="pass another --port (0 picks a free one)") from None
        port = sock.getsockname()[1]
        base_url = f"http://{self.host}:{port}"
        try:
            self.start_background()
        except HostError:
            sock.close()
            raise
        config = uvicorn.Config(self.asgi, log_level=log_level, lifespan="on", access_log=False,
                                timeout_graceful_shutdown=30)
        server = uvicorn.Server(config)
        print(self.banner(base_url), flush=True)

        async def main() -> None:
            serve = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started and not serve.done():
                await asyncio.sleep(0.05)
            if server.started:
                if ready_file:  # whole or not at all: a watcher may read it the moment it appears
                    tmp = Path(f"{ready_file}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps({"url": base_url, "state": self.state}))
                    tmp.replace(ready_file)
                print(f"Host running at {base_url} (state {self.state}); Ctrl+C stops it", flush=True)
            await serve

        try:
            asyncio.run(main())
        finally:
            if self.state != "Stopping":  # uvicorn never started: the lifespan did not stop them
                self.stop_background()
        return 0

