"""Benchmark the Redis prediction cache of the runtime shim, and the local host beside azmlinfsrv.

One run, on a real redis-server (started here on a free loopback port, no persistence) and the examples'
plain score.py and model (examples/diabetes-blob), in two versions: as it is (``run()`` ≈ 0.02 ms) and with
a 10 ms ``time.sleep`` added to ``run()`` (a model whose ``run()`` takes ≥ 10 ms):

a) in-process, through ``modelfunc_runtime.EntryScript.invoke`` (what every trigger calls): per model,
   N calls uncached, N cache misses (each input new) and N cache hits (an input already stored), p50/p99;
b) end to end over HTTP at concurrency 1 (`modelfunc serve`, wrk, one connection): the slow model uncached
   and its cache misses (a new body for every request), and its cache hits (the sample body repeated);
c) under load (wrk, 16 connections for --duration s after a warm-up, the sample body repeated): the slow
   model on `modelfunc serve` with the cache (every request after the first a hit), without it, and on
   ``azmlinfsrv`` — requests/s and p99, each answer checked against expected.json first;
d) one table with the ratios and the goals (a hit ≥ 10× faster than the ≥ 10 ms run(); a miss adds
   ≤ 1 ms), and the numbers as JSON (``--json FILE``).

It is a benchmark, not a test: a missed goal does not fail the run. The exit code is 1 only when a
figure could not be measured.

    .venv/bin/python benchmarks/cache_bench.py [--duration 30] [--calls 300] [--json build/cache-bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import httpx
from _common import Unmeasured, closing_lines, progress, publish, start_run
from serve_bench import (
    HTTP_CONFIG,
    WRK_SCRIPT,
    Wrk,
    azml_python,
    check_answer,
    cpu_busy,
    percentile,
    pick_loadgen,
    serve_azmlinfsrv,
    serve_modelfunc,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "generator" / "modelfunc" / "runtime"))
sys.path.insert(0, str(ROOT / "tests"))

import modelfunc_runtime  # noqa: E402 - the shim exactly as it is copied into every app
from support.redis_server import RedisServer  # noqa: E402

EXAMPLE = ROOT / "examples" / "diabetes-blob"
GOAL_HIT_SPEEDUP = 10.0
GOAL_MISS_OVERHEAD_MS = 1.0
RUN_SLEEP_S = 0.010
SLOW_RUN = """

# Added by benchmarks/cache_bench.py: a model whose run() takes at least 10 ms.
import time as _time

_fast_run = run


def run(data):
    _time.sleep({sleep})
    return _fast_run(data)
"""
CACHE_SECTION = "cache:\n  redis:\n    connection: RedisConnectionString\n    ttl_seconds: 3600\n"


def stats(times_ms: list[float]) -> dict[str, float]:
    return {"n": len(times_ms), "p50_ms": statistics.median(times_ms), "p99_ms": percentile(times_ms, 99),
            "mean_ms": statistics.fmean(times_ms)}


def inputs(n: int, salt: int) -> list[bytes]:
    """n distinct inputs the model accepts (never seen before for a new salt)."""
    return [json.dumps({"data": [[salt, i, 3, 4, 5, 6, 7, 8, 9, 10]]}).encode() for i in range(n)]


def make_repo(work: Path, name: str, *, slow: bool, cache: bool) -> Path:
    repo = work / name
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("build", "__pycache__"))
    if slow:
        with open(repo / "score.py", "a", encoding="utf-8") as f:
            f.write(SLOW_RUN.format(sleep=RUN_SLEEP_S))
    (repo / "modelfunc.yaml").write_text(HTTP_CONFIG + (CACHE_SECTION if cache else ""), encoding="utf-8")
    return repo


# ---------------------------------------------------------------------------------------------- in-process


def measure_in_process(repo: Path, redis_url: str, calls: int, salt: int) -> dict[str, Any]:
    """Uncached, miss and hit latency of EntryScript.invoke (the code every trigger runs)."""
    headers = {"content-type": "application/json"}
    plain = modelfunc_runtime.EntryScript(repo / "score.py", model_dir=repo / "model")
    plain.wait_ready()
    cached = modelfunc_runtime.EntryScript(repo / "score.py", model_dir=repo / "model")
    os.environ["RedisConnectionString"] = redis_url
    cached.enable_cache("RedisConnectionString", 3600)
    cached.wait_ready()
    if cached.cache is None:
        raise Unmeasured(f"the cache did not start: {cached.cache_off}")
    warm = inputs(50, salt + 1)
    for body in warm:
        plain.invoke(body, headers=headers)
        cached.invoke(body, headers=headers)

    def timed(entry: modelfunc_runtime.EntryScript, bodies: list[bytes], expect: str | None) -> list[float]:
        out = []
        for body in bodies:
            t0 = time.perf_counter()
            outcome = entry.invoke(body, headers=headers)
            out.append((time.perf_counter() - t0) * 1000)
            if outcome.status != 200 or outcome.headers.get("x-modelfunc-cache") != expect:
                raise Unmeasured(f"expected a {expect or 'plain'} answer, got {outcome.status} "
                                 f"{outcome.headers.get('x-modelfunc-cache')}")
        return out

    fresh = inputs(calls, salt)
    uncached = timed(plain, fresh, None)
    misses = timed(cached, fresh, "miss")  # the same inputs, new to the cache
    hits = timed(cached, fresh, "hit")
    return {"uncached": stats(uncached), "miss": stats(misses), "hit": stats(hits)}


# ---------------------------------------------------------------------------------------------- over HTTP


UNIQUE_BODIES = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{{"data": [[{salt}, ' .. counter .. ', 3, 4, 5, 6, 7, 8, 9, 10]]}}')
end
"""


def measure_http_c1(children, work: Path, redis_url: str, seconds: float, salt: int, notes: list[str]  # noqa: ANN001
                    ) -> dict[str, Any]:
    """wrk at concurrency 1 on the slow model: uncached (every body new), misses (every body new to the
    cache), hits (the sample body again and again)."""
    env = {"RedisConnectionString": redis_url}
    out: dict[str, Any] = {}
    for name, cache in (("uncached", False), ("cached", True)):
        repo = make_repo(work, f"http-{name}", slow=True, cache=cache)
        body_file = repo / "samples" / "input.json"
        same = pick_loadgen("auto", body_file, work, notes)
        if not isinstance(same, Wrk):
            raise Unmeasured("wrk is needed for the concurrency-1 runs (Debian: apt-get install wrk)")
        unique = Wrk(same.exe, body_file, work)
        unique.script = work / f"unique-{name}.lua"
        unique.script.write_text(WRK_SCRIPT.format(body=body_file) + UNIQUE_BODIES.format(salt=salt + len(out)),
                                 encoding="utf-8")
        proc, base = serve_modelfunc(children, repo, f"modelfunc-c1-{name}", env_extra=env)
        try:
            url = f"{base}/api/score"
            same.run(url, concurrency=1, duration=1)  # warm-up (and the sample stored when cached)
            runs = {"uncached": unique} if not cache else {"miss": unique, "hit": same}
            for key, loadgen in runs.items():
                r = loadgen.run(url, concurrency=1, duration=seconds)
                if not r.clean:
                    raise Unmeasured(f"{name} {key}: {r.errors} errors")
                out[key] = {"n": r.requests, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "rps": r.rps}
            if cache:
                stats = httpx.get(f"{base}/admin/host/status", timeout=5).json()["cache"]
                out["cache_stats"] = stats
                if stats["hits"] < out["hit"]["n"] or stats["misses"] < out["miss"]["n"]:
                    raise Unmeasured(f"the cache did not see the expected hits and misses: {stats}")
        finally:
            children.stop(proc)
    return out


def measure_load(children, work: Path, redis_url: str, args: argparse.Namespace, notes: list[str]  # noqa: ANN001
                 ) -> dict[str, Any]:
    repo = make_repo(work, "load-cached", slow=True, cache=True)
    body_file = repo / "samples" / "input.json"
    body = body_file.read_bytes()
    expected = json.loads((repo / "samples" / "expected.json").read_text(encoding="utf-8"))
    loadgen = pick_loadgen("auto", body_file, work, notes)
    servers = [
        ("modelfunc_cached", "modelfunc serve + Redis cache", "/api/score",
         lambda: serve_modelfunc(children, repo, "load-cached", env_extra={"RedisConnectionString": redis_url})),
        ("modelfunc_uncached", "modelfunc serve", "/api/score",
         lambda: serve_modelfunc(children, make_repo(work, "load-uncached", slow=True, cache=False),
                                 "load-uncached")),
        ("azmlinfsrv", "azmlinfsrv", "/score", lambda: serve_azmlinfsrv(children, repo, 1, python=azml_python(None))),
    ]
    out: dict[str, Any] = {"loadgen": loadgen.name}
    for key, what, path, start in servers:
        progress(f"==> load: {what}")
        proc = None
        try:
            proc, base = start()
            url = base + path
            check_answer(url, body, expected, what)
            loadgen.run(url, concurrency=args.concurrency, duration=args.warmup)
            result = loadgen.run(url, concurrency=args.concurrency, duration=args.duration)
            progress(f"    {result.rps:.0f} req/s, p99 {result.p99_ms or 0:.1f} ms, errors {result.errors}")
            out[key] = result.to_dict()
            if not result.clean:
                raise Unmeasured(f"{what}: {result.errors} errors under load")
            if key == "modelfunc_cached":
                status = httpx.get(f"{base}/admin/host/status", timeout=5).json()
                out["cache_stats"] = status.get("cache")
        finally:
            if proc is not None:
                children.stop(proc)
    return out


# ---------------------------------------------------------------------------------------------- report


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    slow = (results.get("in_process") or {}).get("slow") or {}
    fast = (results.get("in_process") or {}).get("fast") or {}
    out = []
    speedup = slow["uncached"]["p50_ms"] / slow["hit"]["p50_ms"] if slow else None
    out.append({"name": f"hit vs a run() of ≥ {RUN_SLEEP_S * 1000:.0f} ms (p50, in-process)", "value": speedup,
                "display": fmt(speedup, ".0f") + "x" if speedup else "n/a", "target": f">= {GOAL_HIT_SPEEDUP:g}x",
                "result": "NOT MEASURED" if speedup is None else "met" if speedup >= GOAL_HIT_SPEEDUP else "NOT MET"})
    http = results.get("http_c1") or {}
    hspeed = http["uncached"]["p50_ms"] / http["hit"]["p50_ms"] if "hit" in http and "uncached" in http else None
    out.append({"name": "hit vs the same over HTTP (p50, c=1)", "value": hspeed,
                "display": fmt(hspeed, ".1f") + "x" if hspeed else "n/a", "target": f">= {GOAL_HIT_SPEEDUP:g}x",
                "result": "NOT MEASURED" if hspeed is None else "met" if hspeed >= GOAL_HIT_SPEEDUP else "NOT MET"})
    hover = http["miss"]["p50_ms"] - http["uncached"]["p50_ms"] if "miss" in http and "uncached" in http else None
    overhead = fast["miss"]["p50_ms"] - fast["uncached"]["p50_ms"] if fast else None
    out.append({"name": "a miss adds (p50, in-process, fast run())", "value": overhead,
                "display": fmt(overhead, ".3f") + " ms" if overhead is not None else "n/a",
                "target": f"<= {GOAL_MISS_OVERHEAD_MS:g} ms",
                "result": "NOT MEASURED" if overhead is None else
                "met" if overhead <= GOAL_MISS_OVERHEAD_MS else "NOT MET"})
    out.append({"name": "a miss adds (p50, over HTTP, c=1, 10 ms run())", "value": hover,
                "display": fmt(hover, ".3f") + " ms" if hover is not None else "n/a",
                "target": f"<= {GOAL_MISS_OVERHEAD_MS:g} ms",
                "result": "NOT MEASURED" if hover is None else
                "met" if hover <= GOAL_MISS_OVERHEAD_MS else "NOT MET"})
    return out


def render(results: dict[str, Any]) -> str:
    lines = []
    w0, w = 40, 14
    for label, key in (("fast run() (the example as it is)", "fast"), (f"run() + {RUN_SLEEP_S * 1000:.0f} ms", "slow")):
        r = (results.get("in_process") or {}).get(key)
        if not r:
            continue
        lines.append(f"in-process invoke(), {label}, n={r['uncached']['n']}")
        lines.append(f"{'':{w0}}{'uncached':>{w}}{'cache miss':>{w}}{'cache hit':>{w}}")
        for stat in ("p50_ms", "p99_ms"):
            lines.append(f"{stat.replace('_ms', ' (ms)'):{w0}}" + "".join(
                f"{r[k][stat]:>{w}.3f}" for k in ("uncached", "miss", "hit")))
        lines.append(f"{'ratio to uncached (p50)':{w0}}{'1.00':>{w}}"
                     f"{r['miss']['p50_ms'] / r['uncached']['p50_ms']:>{w}.2f}"
                     f"{r['hit']['p50_ms'] / r['uncached']['p50_ms']:>{w}.3f}")
        lines.append("")
    http = results.get("http_c1") or {}
    if {"uncached", "miss", "hit"} <= set(http):
        lines.append(f"over HTTP, wrk at concurrency 1 for {results['config']['c1_duration_s']:g} s each, "
                     f"run() + {RUN_SLEEP_S * 1000:.0f} ms")
        lines.append(f"{'':{w0}}{'uncached':>{w}}{'cache miss':>{w}}{'cache hit':>{w}}")
        for stat in ("p50_ms", "p99_ms"):
            lines.append(f"{stat.replace('_ms', ' (ms)'):{w0}}" + "".join(
                f"{http[k][stat]:>{w}.3f}" for k in ("uncached", "miss", "hit")))
        lines.append("")
    load = results.get("load") or {}
    cols = [("modelfunc_cached", "mf + cache"), ("modelfunc_uncached", "modelfunc"), ("azmlinfsrv", "azmlinfsrv")]
    if any(k in load for k, _ in cols):
        lines.append(f"under load: {load.get('loadgen')}, {results['config']['concurrency']} connections, "
                     f"{results['config']['duration_s']:g} s, run() + {RUN_SLEEP_S * 1000:.0f} ms, one body repeated")
        lines.append(f"{'':{w0}}" + "".join(f"{title:>{w}}" for _, title in cols))
        for label, attr, spec in (("requests/s", "rps", ".0f"), ("p50 (ms)", "p50_ms", ".2f"),
                                  ("p99 (ms)", "p99_ms", ".2f"), ("errors", "errors", "d")):
            lines.append(f"{label:{w0}}" + "".join(
                f"{fmt((load.get(k) or {}).get(attr), spec):>{w}}" for k, _ in cols))
        az = (load.get("azmlinfsrv") or {}).get("rps")
        if az:
            lines.append(f"{'requests/s ratio to azmlinfsrv':{w0}}" + "".join(
                f"{fmt((load.get(k) or {}).get('rps', 0) / az if load.get(k) else None, '.2f'):>{w}}"
                for k, _ in cols))
    lines.extend(closing_lines(results, 48, 12, 12))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--calls", type=int, default=300, help="timed in-process calls per case")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of each load run")
    p.add_argument("--c1-duration", type=float, default=5.0, help="seconds of each concurrency-1 wrk run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load per server")
    p.add_argument("--concurrency", type=int, default=16, help="connections of the load runs")
    p.add_argument("--skip-load", action="store_true", help="leave the load runs out")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work, children = start_run("cache-bench-")
    notes: list[str] = []
    unmeasured: list[str] = []
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "config": {"calls": args.calls, "duration_s": args.duration,
                   "c1_duration_s": args.c1_duration, "concurrency": args.concurrency,
                   "run_sleep_ms": RUN_SLEEP_S * 1000, "example": str(EXAMPLE)},
        "notes": notes, "unmeasured": unmeasured,
    }
    redis = None
    salt = int(time.time()) % 100000  # inputs no earlier run left in this Redis
    try:
        busy = cpu_busy()
        if busy is not None and busy > 0.15:
            notes.append(f"the machine was not idle before the run ({busy:.0%} of the CPUs busy): numbers are noisier")
        redis = RedisServer(work / "redis").start()
        url = redis.url()
        progress(f"==> redis-server on 127.0.0.1:{redis.port}")
        results["in_process"] = {}
        for key, slow in (("fast", False), ("slow", True)):
            progress(f"==> in-process invoke(), {key} run()")
            try:
                repo = make_repo(work, f"inproc-{key}", slow=slow, cache=True)
                results["in_process"][key] = measure_in_process(repo, url, args.calls, salt + (1000 if slow else 0))
                r = results["in_process"][key]
                progress(f"    p50 uncached {r['uncached']['p50_ms']:.3f} ms, miss {r['miss']['p50_ms']:.3f} ms, "
                         f"hit {r['hit']['p50_ms']:.3f} ms")
            except Unmeasured as e:
                unmeasured.append(f"in-process {key}: {e}")
        progress("==> over HTTP at concurrency 1")
        try:
            results["http_c1"] = measure_http_c1(children, work, url, args.c1_duration, salt + 2000, notes)
        except Unmeasured as e:
            unmeasured.append(f"HTTP c=1: {e}")
        if not args.skip_load:
            try:
                results["load"] = measure_load(children, work, url, args, notes)
            except Unmeasured as e:
                unmeasured.append(f"load: {e}")
    except KeyboardInterrupt:
        unmeasured.append("interrupted")
    except Exception as e:  # noqa: BLE001
        unmeasured.append(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        children.stop_all()
        if redis is not None:
            redis.stop()
        results["goals"] = goals(results)
        publish(results, render(results), args.json)
        shutil.rmtree(work, ignore_errors=True)
    return 1 if unmeasured else 0


if __name__ == "__main__":
    sys.exit(main())
