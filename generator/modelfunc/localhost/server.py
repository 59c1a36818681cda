"""The local host's HTTP side (uvicorn + starlette) and its lifecycle.

Limits, as the Functions host (Kestrel) keeps them, so that one client cannot take the host:

* a request body is at most ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` bytes (the Functions host's own app setting, 100 MB
  by default): a larger Content-Length is answered 413 before any of the body is read, and a chunked body is cut off
  with a 413 as soon as it passes the limit, so no more than the limit is ever held;
* a request's headers must arrive within ``MODELFUNC_REQUEST_HEADERS_TIMEOUT`` seconds (30, Kestrel's
  RequestHeadersTimeout) and stay under 64 KiB, and its body must arrive at ``MODELFUNC_MIN_REQUEST_BODY_RATE`` bytes
  per second (240 after a 5 s grace, Kestrel's MinRequestBodyDataRate): a client that dribbles gets 408 and the
  connection is closed; an idle keep-alive connection is closed after uvicorn's timeout_keep_alive (5 s);
* the admin API (``/admin/...``) is open when the host listens on 127.0.0.1, ::1 or localhost only; bound to any
  other address it needs the master key, as the Functions host's admin API does: the ``x-functions-key`` header or
  the ``code`` query parameter. The key comes from the app setting ``MODELFUNC_MASTER_KEY``, or is generated and
  printed once at start (a key set in that setting is required wherever the host listens).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import socket
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

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

# The Functions host's own app setting and default: "Max request size: 100 MB" (functions-scale#service-limits),
# overridden by FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (functions-app-settings#functions_request_body_size_limit).
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_BODY_LIMIT = 104_857_600
HEADERS_TIMEOUT_SETTING = "MODELFUNC_REQUEST_HEADERS_TIMEOUT"
DEFAULT_HEADERS_TIMEOUT = 30.0  # seconds: Kestrel's KestrelServerLimits.RequestHeadersTimeout
BODY_RATE_SETTING = "MODELFUNC_MIN_REQUEST_BODY_RATE"
DEFAULT_BODY_RATE = 240.0  # bytes per second after the grace period: Kestrel's MinRequestBodyDataRate
BODY_RATE_GRACE = 5.0
MAX_HEADER_BYTES = 64 * 1024  # request line and headers together (Kestrel: 32 KiB of headers + an 8 KiB line)
MASTER_KEY_SETTING = "MODELFUNC_MASTER_KEY"
LOCAL_ONLY_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})  # where the admin API is open without a key


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


# ------------------------------------------------------------------ limits


class _RequestRefused(Exception):
    """A request the limits refuse while its body is read: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _RequestRefused)
    return JSONResponse({"message": exc.message}, status_code=exc.status, headers={"connection": "close"})


def _number_setting(settings: dict[str, str], name: str, default: float, *, integer: bool = False) -> float:
    raw = (settings.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if not math.isfinite(value) or value <= 0:
        raise HostError(f"app setting {name}={raw!r} is not a {'whole ' if integer else ''}number > 0",
                        hint=f"e.g. {name}={int(default) if integer else default:g}")
    return value


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Guard:
    """ASGI middleware around the app: the admin API's key, the body limit, the body's minimum data rate."""

    def __init__(self, app: Any, server: HostServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        server = self.server
        path = scope.get("path", "")
        if server.master_key is not None and (path == "/admin" or path.startswith("/admin/")) \
                and not self._has_key(scope, server.master_key):
            await _answer(send, 401, "The admin API needs the host's master key: send it in the x-functions-key "
                                     "header or the code query parameter (modelfunc serve printed it at start, or "
                                     f"it is the app setting {MASTER_KEY_SETTING})", close=False)
            return
        limit = server.max_body_bytes
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if length is not None and length.strip().isdigit() and int(length) > limit:
            logger.warning("refused a %s %s: its body of %s bytes is over the limit of %d bytes (%s)",
                           scope.get("method"), path, length.decode("latin-1"), limit, BODY_LIMIT_SETTING)
            await _answer(send, 413, _too_large(limit))  # before a byte of the body is read
            return
        started = time.monotonic()
        received = 0
        done = False
        rate = server.min_body_rate

        async def limited() -> dict[str, Any]:
            nonlocal received, done
            if done:  # the body is in: what follows is the disconnect, which may take as long as it takes
                return await receive()
            deadline = started + max(BODY_RATE_GRACE, received / rate)
            # A task, not wait_for: with no time left, what the server has already buffered is still taken.
            task = asyncio.ensure_future(receive())
            finished, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if finished:
                message = task.result()
            else:
                task.cancel()
                logger.warning("closed a %s %s whose body came slower than %g bytes/s (%d bytes in %.1f s)",
                               scope.get("method"), path, rate, received, time.monotonic() - started)
                raise _RequestRefused(408, f"The request body arrived too slowly: less than {rate:g} bytes per "
                                           f"second after {BODY_RATE_GRACE:g} s ({received} bytes in "
                                           f"{time.monotonic() - started:.1f} s)") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    logger.warning("refused a %s %s: its body passed the limit of %d bytes (%s)",
                                   scope.get("method"), path, limit, BODY_LIMIT_SETTING)
                    raise _RequestRefused(413, _too_large(limit))
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        await self.app(scope, limited, send)

    @staticmethod
    def _has_key(scope: dict[str, Any], key: str) -> bool:
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-functions-key"), None)
        if given is None:
            given = next((v for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                                  keep_blank_values=True) if k == "code"), None)
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), key.encode("utf-8"))


def _too_large(limit: int) -> str:
    return (f"The request body is larger than the limit of {limit} bytes ({BODY_LIMIT_SETTING}, 100 MB by default "
            "as on the Functions host)")


async def _answer(send: Any, status: int, message: str, *, close: bool = True) -> None:
    body = json.dumps({"message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _guarded_protocol(base: type, *, headers_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES) -> type:
    """uvicorn's HTTP protocol (httptools or h11) with a deadline for each request's headers and a cap on their
    size: uvicorn itself bounds only the idle time between requests (timeout_keep_alive), so a client sending a
    header byte now and then would hold its connection (and a slot) for ever."""

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            self._mf_timer: asyncio.TimerHandle | None = None
            self._mf_bytes = 0
            super().connection_made(transport)
            self._mf_arm()

        def _mf_waiting(self) -> bool:
            """No request in progress: what arrives now is the start of the next request's headers."""
            return self.cycle is None or self.cycle.response_complete

        def _mf_arm(self) -> None:
            if self._mf_timer is None:
                self._mf_timer = self.loop.call_later(headers_timeout, self._mf_expired)

        def _mf_disarm(self) -> None:
            if self._mf_timer is not None:
                self._mf_timer.cancel()
                self._mf_timer = None
            self._mf_bytes = 0

        def data_received(self, data: bytes) -> None:
            waiting = self._mf_waiting()
            if waiting:
                self._mf_arm()
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:  # a request's headers are complete
                self._mf_disarm()
            elif waiting and self.transport is not None and not self.transport.is_closing():
                self._mf_bytes += len(data)
                if self._mf_bytes > max_header_bytes:
                    self._mf_refuse(431, f"The request line and headers are larger than {max_header_bytes} bytes")

        def connection_lost(self, exc: Exception | None) -> None:
            self._mf_disarm()
            super().connection_lost(exc)

        def _mf_expired(self) -> None:
            self._mf_timer = None
            if self._mf_waiting() and self.transport is not None and not self.transport.is_closing():
                if self._mf_bytes or self.cycle is None:
                    logger.info("closed a connection from %s whose request headers did not arrive within %g s",
                                self.client, headers_timeout)
                self._mf_refuse(408, f"The request headers did not arrive within {headers_timeout:g} s")

        def _mf_refuse(self, status: int, message: str) -> None:
            self._mf_disarm()
            body = json.dumps({"message": message}).encode()
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                                 b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body))
            self.transport.close()

    GuardedProtocol.__name__ = f"Guarded{base.__name__}"
    return GuardedProtocol


def listen(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to host:port (IPv4 or IPv6, as the address is); a HostError that says
    what is wrong otherwise: the port, the address, or the address family."""
    where = _hostport(host, port)
    if not 0 <= port <= 65535:
        raise HostError(f"cannot listen on {where}: a port is a number from 0 to 65535",
                        hint="pass another --port (0 picks a free one)")
    addresses_hint = "pass --host with an address of this machine: 127.0.0.1 (this machine only), ::1 (the same, " \
                     "over IPv6) or 0.0.0.0 (every interface)"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise HostError(f"cannot listen on {where}: {host!r} is not an address, or a name this machine can resolve "
                        f"({e.strerror})", hint=addresses_hint) from None
    family, _, _, _, address = infos[0]
    ipv6 = family == socket.AF_INET6
    try:
        # IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted connections only for TCP-protocol sockets.
        # Without it every keep-alive reply waits ~40 ms for the client's delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as e:
        raise HostError(f"cannot listen on {where}: {'IPv6' if ipv6 else 'IPv4'} is not available on this machine "
                        f"({e.strerror})", hint="pass --host 127.0.0.1" if ipv6 else addresses_hint) from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise HostError(f"cannot listen on {where}: the port is in use (another program, or another modelfunc "
                            "serve, listens there)", hint="pass another --port (0 picks a free one)") from None
        if e.errno == errno.EADDRNOTAVAIL:
            what = f"{host} is not an address of this machine" + (
                " (an IPv6 address: is IPv6 enabled, and is the address on one of its interfaces?)" if ipv6 else "")
            raise HostError(f"cannot listen on {where}: {what}", hint=addresses_hint) from None
        if e.errno == errno.EACCES and port < 1024:
            raise HostError(f"cannot listen on {where}: ports below 1024 need privileges",
                            hint="pass a port of 1024 or more (0 picks a free one)") from None
        raise HostError(f"cannot listen on {where}: {e.strerror}",
                        hint="check --host and --port (0 picks a free port)") from None
    return sock


def _local_only(host: str) -> bool:
    """Whether the host listens where only this machine reaches it: 127.0.0.1, ::1 or localhost. Any other address,
    another 127.x alias included, counts as reachable from elsewhere (a container's published port, a tunnel)."""
    host = host.strip().lower()
    if host in LOCAL_ONLY_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host) in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    except ValueError:
        return False


class HostServer:
    """Serve a loaded app: HTTP functions, blob listeners and the admin API."""

    def __init__(self, app: LoadedApp, *, host: str = "127.0.0.1", port: int = 7071,
                 poll_interval: float = 0.2, host_id: str | None = None, max_body_bytes: int | None = None,
                 headers_timeout: float | None = None, min_body_rate: float | None = None,
                 master_key: str | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        settings = app.settings
        # Limits: an argument, else the app setting, else the Functions host's (Kestrel's) default.
        self.max_body_bytes = int(max_body_bytes or _number_setting(settings, BODY_LIMIT_SETTING, DEFAULT_BODY_LIMIT,
                                                                    integer=True))
        self.headers_timeout = headers_timeout or _number_setting(settings, HEADERS_TIMEOUT_SETTING,
                                                                  DEFAULT_HEADERS_TIMEOUT)
        self.min_body_rate = min_body_rate or _number_setting(settings, BODY_RATE_SETTING, DEFAULT_BODY_RATE)
        # The admin API's master key: required when one is set, or when the host is reachable from elsewhere.
        configured = master_key or (settings.get(MASTER_KEY_SETTING) or "").strip() or None
        self.master_key_source = "setting" if configured else None
        if configured is None and not _local_only(host):
            configured, self.master_key_source = secrets.token_urlsafe(32), "generated"
        if configured is not None:  # it is printed once at start: in a workflow's log, masked first
            from .. import github

            github.mask(configured)
        self.master_key: str | None = configured
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
        self.asgi = Starlette(routes=self._routes(), lifespan=self._lifespan,
                              exception_handlers={_RequestRefused: _refusal})
        self.handler = _Guard(self.asgi, self)  # what uvicorn serves: the app behind the limits

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

        sock = listen(self.host, self.port)
        port = sock.getsockname()[1]
        base_url = f"http://{_hostport(self.host, port)}"
        try:
            self.start_background()
        except HostError:
            sock.close()
            raise
        config = uvicorn.Config(self.handler, log_level=log_level, lifespan="on", access_log=False,
                                timeout_graceful_shutdown=30, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                                http=_guarded_protocol(AutoHTTPProtocol, headers_timeout=self.headers_timeout))
        server = uvicorn.Server(config)
        print(self.banner(base_url), flush=True)
        print(self.admin_line(), flush=True)

        async def main() -> None:
            serve = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started and not serve.done():
                await asyncio.sleep(0.05)
            if server.started:
                if ready_file:  # whole or not at all: a watcher may read it the moment it appears
                    tmp = Path(f"{ready_file}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps({"url": base_url, "state": self.state,
                                               "environment": self.environment()}))
                    tmp.replace(ready_file)
                print(f"Host running at {base_url} (state {self.state}); Ctrl+C stops it", flush=True)
            await serve

        try:
            asyncio.run(main())
        finally:
            if self.state != "Stopping":  # uvicorn never started: the lifespan did not stop them
                self.stop_background()
        return 0

