"""The Redis prediction cache of the runtime shim, on a real redis-server and the real local host.

Every test starts its own redis-server (no persistence) on a free loopback port and stops it at the end;
the hosts are `modelfunc serve` child processes reading the connection string from the app setting.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.cases.cache import (
    BAD_CONNECTIONS,
)
from support.core import run_modelfunc
from support.redis_server import RedisServer
from support.secrets_guard import secret

PASSWORD = secret("redis-Pa55-invented-by-test-cache")
SETTING = "RedisConnectionString"
CONFIG = """\
trigger:
  type: http
  auth_level: anonymous
  route: score
  methods: [POST]
samples:
  tolerance: 1.0e-4
{cache}"""
CACHE = "cache:\n  redis:\n    connection: RedisConnectionString\n    ttl_seconds: 600\n"
SAMPLE = b'{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}'


def cache_repo(example, *, cache: bool = True) -> Path:  # noqa: ANN001
    repo = example("diabetes-blob")
    (repo / "modelfunc.yaml").write_text(CONFIG.format(cache=CACHE if cache else ""))
    return repo


def answers(model_dir: Path, bodies: list[bytes]) -> list[list[float]]:
    """What the model answers, computed here (the same arithmetic as its score.py)."""
    model = json.loads((model_dir / "model.json").read_text())
    return [(np.asarray(json.loads(b)["data"], dtype=float) @ np.asarray(model["coef"]) + model["intercept"])
            .round(4).tolist() for b in bodies]


def post(url: str, body: bytes, client: httpx.Client | None = None) -> httpx.Response:
    return (client or httpx).post(f"{url}/api/score", content=body, headers={"content-type": "application/json"},
                                  timeout=30)


def bodies(n: int) -> list[bytes]:
    return [json.dumps({"data": [[i, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}).encode() for i in range(n)]


def test_generated_app_requires_redis_only_with_the_cache(example, tmp_path) -> None:  # noqa: ANN001
    for cache in (True, False):
        out = tmp_path / f"out-{cache}"
        result = run_modelfunc("package", str(cache_repo(example, cache=cache)), "--out", str(out), "--no-build")
        assert result.returncode == 0, result.stderr
        lines = (out / "app" / "requirements.txt").read_text().splitlines()
        assert ("redis>=5" in lines) is cache, lines


def test_cached_answer_is_byte_identical_to_an_uncached_one(example, serve, redis_server, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(SETTING, redis_server.url())
    cached_host = serve(cache_repo(example), extra=("-v",))
    plain_host = serve(cache_repo(example, cache=False))

    first, second = post(cached_host.url, SAMPLE), post(cached_host.url, SAMPLE)
    uncached = post(plain_host.url, SAMPLE)
    assert first.status_code == second.status_code == uncached.status_code == 200
    assert first.headers["x-modelfunc-cache"] == "miss" and second.headers["x-modelfunc-cache"] == "hit"
    assert "x-modelfunc-cache" not in uncached.headers
    assert second.content == first.content == uncached.content  # byte for byte
    assert second.headers["content-type"] == uncached.headers["content-type"]
    assert json.loads(second.content) == [661.6371, 362.4341]

    stats = cached_host.status()["cache"]
    assert (stats["state"], stats["hits"], stats["misses"], stats["stored"]) == ("up", 1, 1, 1)
    assert re.fullmatch(r"[0-9a-f]{32}", stats["model_version"])
    assert "cache" not in plain_host.status()
    keys = redis_server.client().keys("modelfunc:http:*")
    assert len(keys) == 1 and stats["model_version"] in keys[0].decode()
    assert 590 <= redis_server.client().ttl(keys[0]) <= 600  # ttl_seconds from modelfunc.yaml
    assert redis_server.client().get(keys[0]) == first.content
    log = cached_host.output()
    assert re.search(r"cache miss \(http input of \d+ bytes, key …[0-9a-f]{12}\): scored in [\d.]+ ms, status 200, "
                     r"to be stored", log), log
    assert re.search(r"cache hit \(http input of \d+ bytes, key …[0-9a-f]{12}\) in [\d.]+ ms", log), log


def test_only_successful_answers_are_cached_and_keys_follow_the_exact_bytes(example, serve, redis_server,
                                                                            monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(SETTING, redis_server.url())
    host = serve(cache_repo(example))
    for _ in range(2):
        assert post(host.url, b'{"data": [[1, 2, 3]]}').status_code == 500  # run() raises: never cached
        # malformed: run() gets it as it is, as under azmlinfsrv (docs/contract.md), and fails: never cached
        assert post(host.url, b'{"data": [[1, 2,').status_code == 500
    spaced = SAMPLE.replace(b", ", b",  ")  # the same JSON, other bytes: another key
    assert post(host.url, SAMPLE).headers["x-modelfunc-cache"] == "miss"
    assert post(host.url, spaced).headers["x-modelfunc-cache"] == "miss"
    assert post(host.url, spaced).headers["x-modelfunc-cache"] == "hit"
    stats = host.status()["cache"]
    assert (stats["hits"], stats["misses"], stats["stored"]) == (1, 6, 2)
    assert redis_server.client().dbsize() == 2


def test_answer_over_the_size_limit_is_not_stored(example, serve, redis_server, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(SETTING, redis_server.url())
    monkeypatch.setenv("MODELFUNC_CACHE_MAX_VALUE_BYTES", "10")  # the sample's answer is 20 bytes
    host = serve(cache_repo(example))
    assert [post(host.url, SAMPLE).headers["x-modelfunc-cache"] for _ in range(2)] == ["miss", "miss"]
    assert host.status()["cache"]["too_large"] == 2
    assert redis_server.client().dbsize() == 0


def test_model_version_changes_with_the_model_files(example, serve, redis_server, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(SETTING, redis_server.url())
    repo = cache_repo(example)
    one = serve(repo)
    assert post(one.url, SAMPLE).headers["x-modelfunc-cache"] == "miss"
    model = json.loads((repo / "model" / "model.json").read_text())
    model["intercept"] += 1.0
    (repo / "model" / "model.json").write_text(json.dumps(model))
    two = serve(repo, extra=("--out", str(repo / "build2")))
    resp = post(two.url, SAMPLE)
    assert resp.headers["x-modelfunc-cache"] == "miss"  # not the old model's answer
    assert json.loads(resp.content) == answers(repo / "model", [SAMPLE])[0]
    assert one.status()["cache"]["model_version"] != two.status()["cache"]["model_version"]


def test_model_version_covers_the_whole_source_directory_not_the_wiring(tmp_path) -> None:  # noqa: ANN001
    """Files beside score.py ship with it (a data file read through __file__ decides answers): they are part of
    the version; the files that only wire the app to its host are not."""
    from modelfunc.runtime.modelfunc_runtime import model_version

    app = tmp_path / "app"
    (app / "model").mkdir(parents=True)
    (app / "score.py").write_text("def run(data):\n    return data\n")
    (app / "lookup.csv").write_text("a,1\n")
    (app / "model" / "weights.bin").write_bytes(b"\x00\x01")
    (app / "function_app.py").write_text("# generated\n")

    def version() -> str:
        return model_version(app, app / "score.py", app / "model")

    first = version()
    (app / "function_app.py").write_text("# generated again\n")
    (app / "host.json").write_text("{}")
    (app / ".hidden").write_text("x")
    assert version() == first
    (app / "lookup.csv").write_text("a,2\n")
    second = version()
    assert second != first
    (app / "model" / "weights.bin").write_bytes(b"\x00\x02")
    assert version() not in (first, second)


def test_redis_stopped_and_restarted_mid_run_fails_no_request(example, serve, redis_server, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(SETTING, redis_server.url())
    repo = cache_repo(example)
    host = serve(repo, extra=("-v",))
    inputs = bodies(24)
    expected = [json.dumps(a).encode() for a in answers(repo / "model", inputs)]
    for body in inputs[:12]:  # half the inputs are in the cache before the outage
        post(host.url, body)
    results: list[tuple[int, int, bytes, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def worker(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = n
            while not stop.is_set():
                k = i % len(inputs)
                try:
                    resp = post(host.url, inputs[k], client)
                    results.append((k, resp.status_code, resp.content, resp.headers.get("x-modelfunc-cache", "")))
                except httpx.HTTPError as e:
                    failures.append(f"{type(e).__name__}: {e}")
                i += 5

    with ThreadPoolExecutor(8) as pool:
        for n in range(8):
            pool.submit(worker, n)
        deadline = time.monotonic() + 30
        while len(results) + len(failures) < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        redis_server.stop()  # Redis goes away while requests are being served
        # ...for longer than the runtime's first retry (1 s after the outage: it fails and waits 2 s more)...
        time.sleep(1.5)
        redis_server.start()  # ...and comes back on the same port
        # Requests keep coming until the runtime's next retry (1 s, 2 s, 4 s, ... after the outage) finds it.
        deadline = time.monotonic() + 40
        while "is reachable again" not in host.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        stop.set()

    assert failures == []
    assert len(results) > 100, len(results)
    wrong = [(k, status, body[:80]) for k, status, body, _ in results if status != 200 or body != expected[k]]
    assert wrong == [], wrong[:5]
    log = host.output()
    assert log.count("is unavailable") == 1, log  # the outage is logged once, not per request
    assert log.count("is reachable again") == 1, log
    stats = host.status()["cache"]
    assert stats["state"] == "up" and stats["outages"] == 1 and stats["bypassed"] > 0
    assert redis_server.client().dbsize() > 0  # it is used again after the restart
    assert redis_server.password not in log


@pytest.mark.serial  # a 0.2 s bound on each request: not beside other tests' load
def test_hung_redis_costs_one_short_timeout_then_nothing(example, serve, redis_server, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(SETTING, redis_server.url())
    repo = cache_repo(example)
    host = serve(repo)
    assert post(host.url, SAMPLE).status_code == 200
    redis_server.pause()  # accepts nothing, answers nothing: a very slow Redis
    try:
        timed: list[tuple[float, float]] = []  # (when the request began, its latency)
        for body in bodies(10):
            started = time.perf_counter()
            resp = post(host.url, body)
            timed.append((started, time.perf_counter() - started))
            assert resp.status_code == 200 and json.loads(resp.content) == answers(repo / "model", [body])[0]
    finally:
        redis_server.resume()
    latencies = [latency for _, latency in timed]
    assert latencies[0] < 1.5, latencies  # one socket timeout (250 ms by default)
    # Then the cache is skipped until the back-off ends: the first back-off after the first request's timeout, so
    # at the earliest that long after the first request began. (On a busy machine the ten requests may outlast it: a
    # request after it may then probe Redis again, as it should.)
    from modelfunc.runtime.modelfunc_runtime import CACHE_BACKOFF_S, CACHE_TIMEOUT_S

    backoff_ends = timed[0][0] + CACHE_TIMEOUT_S + CACHE_BACKOFF_S[0]
    skipped = [latency for began, latency in timed[1:] if began < backoff_ends]
    assert skipped and max(skipped) < 0.2, latencies
    assert host.output().count("is unavailable (TimeoutError") == 1


def test_wrong_password_is_one_logged_outage_and_no_leak(example, serve, redis_server, monkeypatch) -> None:  # noqa: ANN001
    wrong = secret("not-the-redis-password-42")
    monkeypatch.setenv(SETTING, redis_server.url(password=wrong))
    host = serve(cache_repo(example))
    for _ in range(5):
        resp = post(host.url, SAMPLE)
        assert resp.status_code == 200 and json.loads(resp.content) == [661.6371, 362.4341]
    log = host.output()
    assert log.count("is unavailable (AuthenticationError") == 1, log
    assert host.status()["cache"]["state"] == "down"
    assert wrong not in log and wrong not in json.dumps(host.status())


def test_tls_connection_in_the_azure_portal_form(example, serve, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    server = RedisServer(tmp_path / "redis-tls", password=PASSWORD, tls=True).start()
    try:
        monkeypatch.setenv(SETTING, server.azure_style())  # 127.0.0.1:<tls port>,password=...,ssl=True,...
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))  # trust the test's own CA, as a public one is
        host = serve(cache_repo(example))
        assert [post(host.url, SAMPLE).headers["x-modelfunc-cache"] for _ in range(2)] == ["miss", "hit"]
        stats = host.status()["cache"]
        assert stats["where"] == f"rediss://127.0.0.1:{server.tls_port}" and stats["hits"] == 1
        assert server.client().dbsize() == 1
    finally:
        server.stop()


@pytest.mark.parametrize(("value", "message"), [c[1:] for c in BAD_CONNECTIONS], ids=[c[0] for c in BAD_CONNECTIONS])
def test_unusable_connection_setting_runs_uncached_and_says_why(example, serve, monkeypatch, value: str,
                                                               message: str) -> None:  # noqa: ANN001
    monkeypatch.setenv(SETTING, value)
    host = serve(cache_repo(example))
    resp = post(host.url, SAMPLE)
    assert resp.status_code == 200 and "x-modelfunc-cache" not in resp.headers
    assert message in host.output()
    assert host.status()["cache"]["state"] == "off" and message.removeprefix("cache: ") in \
        host.status()["cache"]["reason"]
    assert "s3cretWithoutName" not in host.output()
