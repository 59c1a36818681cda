"""The local host's limits, as the Functions host (Kestrel) keeps them, so that one client cannot take the host:

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

Here: the middleware around the app (:class:`Guard`), uvicorn's protocol with a deadline for the headers
(:func:`guarded_protocol`), the listening socket (:func:`listen`) and the settings that change the limits.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
import math
import socket
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import HostError
from .appsettings import MASTER_KEY_SETTING

logger = logging.getLogger("modelfunc.host")

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


class RequestRefused(Exception):
    """A request the limits refuse while its body is read: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRefused)
    return JSONResponse({"message": exc.message}, status_code=exc.status, headers={"connection": "close"})


def number_setting(settings: dict[str, str], name: str, default: float, *, integer: bool = False) -> float:
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


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Guard:
    """ASGI middleware around the app: the admin API's key, the body limit, the body's minimum data rate."""

    def __init__(self, app: Any, server: Any) -> None:
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
            # With no time left, what the server has already buffered is still taken: asyncio.timeout cancels at the
            # loop's next turn, and a receive() whose message is there returns without waiting for one.
            message = await _within(receive, deadline - time.monotonic())
            if message is None:
                logger.warning("closed a %s %s whose body came slower than %g bytes/s (%d bytes in %.1f s)",
                               scope.get("method"), path, rate, received, time.monotonic() - started)
                raise RequestRefused(408, f"The request body arrived too slowly: less than {rate:g} bytes per "
                                           f"second after {BODY_RATE_GRACE:g} s ({received} bytes in "
                                           f"{time.monotonic() - started:.1f} s)") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    logger.warning("refused a %s %s: its body passed the limit of %d bytes (%s)",
                                   scope.get("method"), path, limit, BODY_LIMIT_SETTING)
                    raise RequestRefused(413, _too_large(limit))
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


async def _within(receive: Any, seconds: float) -> dict[str, Any] | None:
    """``await receive()``, or None when it has not answered within ``seconds`` (then it is cancelled)."""
    if hasattr(asyncio, "timeout"):  # Python 3.11+: a timer on this task, no task of its own
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                return await receive()
        except TimeoutError:
            return None
    task = asyncio.ensure_future(receive())
    finished, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    if finished:
        return task.result()
    task.cancel()
    return None


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


def guarded_protocol(base: type, *, headers_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES) -> type:
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
    where = hostport(host, port)
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


