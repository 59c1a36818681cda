"""The local host's HTTP request path: a request as the Python worker gets it, its answer as the host sends it, and
the event loop the server runs on. Kept lean: these run for every request, on the event loop's thread."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.functions.http import HttpResponseConverter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def host_request(request: Request, body: bytes) -> func.HttpRequest:
    """The HttpRequest the Python worker builds from what the Functions host sends it (azure-functions-host
    GrpcMessageConversionExtensions.ToRpcHttp): header names lower-cased, a repeated header or query parameter one
    value joined by commas (ASP.NET's StringValues.ToString()), the URL with its query string as the client sent it.
    In Azure, App Service's front end adds the client's address to X-Forwarded-For; so does this host."""
    scope = request.scope
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    client = scope.get("client")
    if client:
        host, port = client
        hop = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers["x-forwarded-for"] = f"{headers['x-forwarded-for']},{hop}" if "x-forwarded-for" in headers else hop
    params: dict[str, str] = {}
    if scope.get("query_string"):
        for key, value in request.query_params.multi_items():
            params[key] = f"{params[key]},{value}" if key in params else value
    return func.HttpRequest(method=scope["method"], url=_url(request), headers=headers, params=params,
                            route_params=dict(scope.get("path_params") or {}), body=body)


_URLS: dict[tuple[Any, ...], str] = {}  # Starlette's str(request.url) for what it is made of: a client asks for few


def _url(request: Request) -> str:
    """``str(request.url)``, remembered: the same scheme, server, paths, query and Host header make the same URL."""
    scope = request.scope
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    key = (scope.get("scheme"), scope.get("server"), scope.get("root_path"), scope["path"], scope.get("query_string"),
           host)
    url = _URLS.get(key)
    if url is None:
        if len(_URLS) >= 1024:
            _URLS.clear()
        url = _URLS[key] = str(request.url)
    return url


def to_starlette(resp: Any) -> Response:
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


def run_loop(main: Any) -> None:
    """Run the server's coroutine on uvloop when it is installed (uvicorn[standard] brings it, as uvicorn's own
    ``loop="auto"`` would pick it), else on asyncio's loop. As uvicorn.run does: no handler of asyncio's for SIGINT,
    so the signal uvicorn raises again once it has shut down ends the process as a KeyboardInterrupt."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        try:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class RunPool:
    """The threads a synchronous function runs on, as the Python worker's ThreadPoolExecutor (``size`` threads, one
    more started only when every thread is busy), handing work over with as little as can be: one C queue in, one
    call_soon_threadsafe out (no concurrent Future, no semaphore, no future chaining). Used from one event loop."""

    def __init__(self, size: int | None = None, name: str = "modelfunc-function") -> None:
        self.size = size or min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
        self.name = name
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0  # calls handed over and not settled yet: counted on the loop's thread only

    def run(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """``fn()`` on one of the threads; its result (or exception) in the returned future of the running loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._busy += 1
        if self._busy > len(self._threads) and len(self._threads) < self.size:
            thread = threading.Thread(target=self._worker, name=f"{self.name}_{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._work.put((fn, future, loop))
        return future

    def _worker(self) -> None:
        get = self._work.get
        while True:
            item = get()
            if item is None:
                return
            fn, future, loop = item
            try:
                result = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting request
                loop.call_soon_threadsafe(self._settle, future, None, e)
            else:
                loop.call_soon_threadsafe(self._settle, future, result, None)
            del item, fn, future

    def _settle(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self._busy -= 1
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._work.put(None)
