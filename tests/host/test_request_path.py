"""The local host's request path, cut for speed (issue 17): the same answers as before the cuts.

* ``httpio.host_request`` reads the ASGI scope directly and remembers URLs: it must build exactly the HttpRequest
  that Starlette's Request gave (the reference below is the code it replaced);
* the body's rate limit waits on a timer instead of a task of its own: a message already there is still taken
  with no time left, one that does not come is given up;
* a function's fixed route skips Starlette's router: a served app answers there, with a trailing slash, with a
  route parameter (Starlette's path) and for a method the function does not list (404) as before;
* run() goes to a thread pool as the Python worker's: several at once by default, one with
  PYTHON_THREADPOOL_THREAD_COUNT=1.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import httpx
import pytest
from modelfunc.localhost.httpio import host_request
from modelfunc.localhost.limits import _within
from starlette.requests import Request


def reference_host_request(request: Request, body: bytes):  # noqa: ANN201 - the code host_request replaced
    import azure.functions as func

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


def scope(path: str = "/api/score", query: bytes = b"", headers: list | None = None, client=("127.0.0.1", 5000),
          server=("127.0.0.1", 7071), method: str = "POST", path_params: dict | None = None) -> dict:
    s = {"type": "http", "method": method, "scheme": "http", "server": server, "client": client, "root_path": "",
         "path": path, "raw_path": path.encode(), "query_string": query, "headers": headers or []}
    if path_params is not None:
        s["path_params"] = path_params
    return s


SCOPES = [
    scope(headers=[(b"host", b"127.0.0.1:7071"), (b"content-type", b"application/json")]),
    scope(query=b"a=1&b=2&a=3&empty=", headers=[(b"host", b"localhost:7071")]),
    scope(headers=[(b"host", b"example.org"), (b"X-Unit", b"kg"), (b"x-unit", b"g"),
                   (b"x-forwarded-for", b"10.1.1.1")]),
    scope(client=("::1", 4000), headers=[(b"host", b"[::1]:7071")]),
    scope(client=None, headers=[]),  # no Host header, no client: the server's address
    scope(server=("::1", 80), headers=[]),
    scope(path="/api/items/42", path_params={"id": "42"}, headers=[(b"host", b"h:1")], method="GET"),
    scope(path="/api/a b?/#", query=b"q=%C3%A9", headers=[(b"host", b"bad host header")]),
    scope(headers=[(b"host", b"127.0.0.1:7071"), (b"host", b"other:1")]),
]


@pytest.mark.parametrize("s", SCOPES, ids=range(len(SCOPES)))
def test_host_request_is_what_starlette_gave(s: dict) -> None:
    for _ in range(2):  # the second time from the remembered URL
        got = host_request(Request(dict(s)), b"{}")
        want = reference_host_request(Request(dict(s)), b"{}")
        assert (got.method, got.url, dict(got.headers), dict(got.params), dict(got.route_params), got.get_body()) == \
               (want.method, want.url, dict(want.headers), dict(want.params), dict(want.route_params), want.get_body())


def test_remembered_urls_follow_host_and_query() -> None:
    """The URL is remembered per Host header, path and query: another of any of them is another URL."""
    urls = {host_request(Request(scope(query=q, headers=[(b"host", h)])), b"").url
            for q in (b"", b"x=1") for h in (b"a:1", b"b:2")}
    assert urls == {"http://a:1/api/score", "http://b:2/api/score", "http://a:1/api/score?x=1",
                    "http://b:2/api/score?x=1"}


def test_body_wait_takes_what_is_there_and_gives_up_on_what_is_not() -> None:
    async def there() -> dict:
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def never() -> dict:
        await asyncio.sleep(3600)
        raise AssertionError("not cancelled")

    async def main() -> tuple:
        taken = await _within(there, 0.0)  # no time left: what is already there is still taken
        started = time.monotonic()
        given_up = await _within(never, 0.2)
        return taken, given_up, time.monotonic() - started

    taken, given_up, waited = asyncio.run(main())
    assert taken == {"type": "http.request", "body": b"x", "more_body": False}
    assert given_up is None and 0.15 < waited < 2


SLEEPY = '''\
import json
import time


def init():
    pass


def run(data):
    time.sleep(json.loads(data)["sleep"])
    return {"slept": json.loads(data)["sleep"]}
'''


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory):  # noqa: ANN201
    from support.core import copy_example, hosts_side_by_side

    tmp = tmp_path_factory.mktemp("sleepy")
    repos = {}
    for name in ("default", "one-thread"):  # started side by side: each from a copy of the repo
        (tmp / name).mkdir()
        repo = copy_example("diabetes-http", tmp / name)
        (repo / "score.py").write_text(SLEEPY)
        (repo / "modelfunc.yaml").write_text("trigger:\n  type: http\n  auth_level: anonymous\n  route: score\n"
                                             "  methods: [POST]\n")
        repos[name] = repo
    with hosts_side_by_side(tmp, repos, {"one-thread": ("--setting", "PYTHON_THREADPOOL_THREAD_COUNT=1")}) as started:
        yield started["default"], started["one-thread"]


def _concurrent(url: str, n: int, sleep: float) -> float:
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{url}/api/score", json={"sleep": sleep}, timeout=30), range(n)))
    assert [a.status_code for a in answers] == [200] * n, [a.text for a in answers]
    return time.monotonic() - started


def test_run_calls_overlap_by_default_and_not_with_one_thread(sleepy) -> None:  # noqa: ANN001
    default, one = sleepy
    assert _concurrent(default.url, 4, 0.5) < 1.5  # 4 x 0.5 s side by side (serial would be 2 s)
    assert _concurrent(one.url, 4, 0.5) >= 1.9  # PYTHON_THREADPOOL_THREAD_COUNT=1: one run() at a time


def test_fixed_route_answers_as_the_router_did(sleepy) -> None:  # noqa: ANN001
    url = sleepy[0].url
    plain = httpx.post(f"{url}/api/score", json={"sleep": 0}, timeout=30)
    slash = httpx.post(f"{url}/api/score/", json={"sleep": 0}, timeout=30)
    assert plain.status_code == slash.status_code == 200
    assert plain.content == slash.content == b'{"slept": 0}'
    strip = lambda r: [(k, v) for k, v in r.headers.multi_items() if k not in ("date", "x-ms-run-fn-exec-ms")]  # noqa: E731
    assert strip(plain) == strip(slash) == [("server", "uvicorn"), ("content-type", "application/json"),
                                            ("content-length", "12")]
    other = httpx.get(f"{url}/api/score", timeout=30)  # a method the function does not list: an empty 404
    assert (other.status_code, other.content) == (404, b"")
    missing = httpx.post(f"{url}/api/nothing", timeout=30)  # not a route: Starlette's own 404
    assert (missing.status_code, missing.text) == (404, "Not Found")
