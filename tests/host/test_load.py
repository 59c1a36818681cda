"""The local host under a bounded load on loopback: 16 concurrent clients for a while (8 s here, 30 s with
MODELFUNC_LOAD_SECONDS=30; the benchmark runs longer), every answer right, and the host's memory flat."""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import psutil
import pytest
from support.core import ROOT
from support.redis_server import RedisServer
from support.secrets_guard import secret

pytestmark = pytest.mark.serial  # 16 busy clients, a rate and memory bounds: run alone, and no load for its neighbours

CONCURRENCY = 16
SECONDS = float(os.environ.get("MODELFUNC_LOAD_SECONDS", "8"))
WARMUP_S = 2.0
RSS_GROWTH_LIMIT = 16 * 2**20  # after the warm-up; a leak of even 1 KiB per request would pass this in seconds
CONFIG = "trigger:\n  type: http\n  auth_level: anonymous\n  route: score\n  methods: [POST]\n"
SAMPLE = b'{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}'
EXPECTED = b"[661.6371, 362.4341]"


def bodies(n: int) -> list[tuple[bytes, list[float]]]:
    """Distinct inputs (so a cache sees hits and misses) and the answer each must get."""
    model = json.loads((ROOT / "examples/diabetes-blob/model/model.json").read_text())
    out = []
    for i in range(n):
        row = [i % 7, 2, 3, 4, 5, 6, 7, 8, 9, i % 11]
        answer = round(sum(x * c for x, c in zip(row, model["coef"], strict=True)) + model["intercept"], 4)
        out.append((json.dumps({"data": [row]}).encode(), [answer]))
    return out


@pytest.mark.parametrize("cache", [False, True], ids=["uncached", "redis-cache"])
def test_host_under_load_answers_everything_and_keeps_memory_flat(example, serve, tmp_path, monkeypatch,
                                                                   cache: bool) -> None:  # noqa: ANN001
    repo = example("diabetes-blob")
    config = CONFIG
    redis = None
    if cache:
        redis = RedisServer(tmp_path / "redis", password=secret("load-test-redis-pass-7")).start()
        monkeypatch.setenv("RedisConnectionString", redis.url())
        config += "cache:\n  redis:\n    ttl_seconds: 60\n"
    (repo / "modelfunc.yaml").write_text(config)
    try:
        host = serve(repo)
        proc = psutil.Process(host.process.pid)
        inputs = bodies(64)
        assert httpx.post(f"{host.url}/api/score", content=SAMPLE, timeout=10).content == EXPECTED
        counts = {"ok": 0, "wrong": 0, "errors": 0}
        problems: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(n: int) -> None:
            with httpx.Client(base_url=host.url, timeout=30) as c:
                i = n
                while not stop.is_set():
                    body, answer = inputs[i % len(inputs)]
                    i += CONCURRENCY
                    try:
                        resp = c.post("/api/score", content=body, headers={"content-type": "application/json"})
                        right = resp.status_code == 200 and resp.json() == answer
                    except httpx.HTTPError as e:
                        with lock:
                            counts["errors"] += 1
                            problems.append(f"{type(e).__name__}: {e}")
                        continue
                    with lock:
                        counts["ok" if right else "wrong"] += 1
                        if not right:
                            problems.append(f"{resp.status_code}: {resp.text[:200]}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CONCURRENCY)]
        for t in threads:
            t.start()
        time.sleep(WARMUP_S)
        baseline = proc.memory_info().rss
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < SECONDS:
            time.sleep(0.25)
            samples.append(proc.memory_info().rss)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        status = host.status()
    finally:
        if redis is not None:
            redis.stop()

    assert problems == [], problems[:5]
    assert counts["errors"] == counts["wrong"] == 0
    assert counts["ok"] > 50 * SECONDS, counts  # it really was under load
    growth = max(samples) - baseline
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB (from {baseline / 2**20:.1f} MiB)"
    half = len(samples) // 2
    late, early = sum(samples[half:]) / (len(samples) - half), sum(samples[:half]) / half
    assert late - early < RSS_GROWTH_LIMIT / 2, f"RSS still rising: {early / 2**20:.1f} → {late / 2**20:.1f} MiB"
    if cache:
        stats = status["cache"]
        assert stats["state"] == "up" and stats["hits"] > stats["misses"] > 0 and stats["bypassed"] == 0, stats
    print(f"\n{counts['ok']} requests in {SECONDS:g} s at concurrency {CONCURRENCY}; RSS {baseline / 2**20:.1f} MiB "
          f"after warm-up, max growth {growth / 2**20:.2f} MiB")
