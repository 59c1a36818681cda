"""Benchmark `modelfunc serve` against azmlinfsrv (azureml-inference-server-http) on the same score.py.

One run measures, on a plain undecorated score.py and its model (examples/diabetes-blob):

a) a bare in-process ``run()`` call (``init()`` once, then N timed calls) — the floor;
b/c) ``modelfunc serve`` (http trigger, POST /api/score) and ``azmlinfsrv`` (POST /score), one at a time,
   driven by the same load generator (wrk when installed, else an asyncio+httpx client) at the same
   concurrency for a fixed duration after a warm-up, then a short concurrency-1 pass for latency;
d) the blob round trip on Azurite: ``modelfunc serve`` for the blob example, then
   ``modelfunc.roundtrip.blob.run_blob_test`` N times;
e) one table with the goals, and the numbers as JSON (``--json FILE``).

It is a benchmark, not a test: a missed goal does not fail the run. The exit code is 1 only when a
figure could not be measured (a server did not start, a load run had errors, a blob round trip failed).

    .venv/bin/python benchmarks/serve_bench.py [--duration 10] [--concurrency 16] [--json bench.json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import Children, Unmeasured, closing_lines, progress, start_run
from modelfunc.compare import compare

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXAMPLE = ROOT / "examples" / "diabetes-blob"

GOAL_RATIO = 1.5  # modelfunc / azmlinfsrv throughput
GOAL_OVERHEAD_MS = 1.0  # modelfunc p50 at concurrency 1 minus the bare run() p50
GOAL_BLOB_S = 0.5  # blob round-trip p50

HTTP_CONFIG = """\
# Written by benchmarks/serve_bench.py: the blob example's score.py and model behind an HTTP trigger.
name: serve-bench
trigger:
  type: http
  auth_level: anonymous
  route: score
  methods: [POST]
samples:
  input: samples/input.json
  expected: samples/expected.json
  tolerance: 1.0e-4
"""

# azmlinfsrv's own entry point (azureml_inference_server_http.amlserver:run, what the `azmlinfsrv`
# script calls), with one change: gunicorn binds 127.0.0.1 instead of its hard-coded 0.0.0.0.
AZMLINFSRV_LOOPBACK = """\
import sys
import azureml_inference_server_http.constants as constants
constants.DEFAULT_HOST = "127.0.0.1"
from azureml_inference_server_http.amlserver import run
sys.argv[0] = "azmlinfsrv"
run()
"""

WRK_SCRIPT = """\
local f = assert(io.open([==[{body}]==], "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "SERVE_BENCH {{\\"requests\\": %d, \\"duration_us\\": %d, \\"connect\\": %d, \\"read\\": %d, " ..
    "\\"write\\": %d, \\"status\\": %d, \\"timeout\\": %d, \\"p50_us\\": %.1f, \\"p90_us\\": %.1f, " ..
    "\\"p99_us\\": %.1f, \\"max_us\\": %.1f, \\"mean_us\\": %.1f}}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


# ---------------------------------------------------------------------------------------------- results


@dataclass
class LoadResult:
    loadgen: str
    url: str
    concurrency: int
    duration_s: float
    requests: int
    rps: float
    ok_rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.requests > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors, "clean": self.clean}


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# ---------------------------------------------------------------------------------------------- children


def free_port() -> int:
    from modelfunc.azurite import free_port as _free_port

    return _free_port()


def wait_http(proc: subprocess.Popen[bytes], url: str, *, timeout: float, what: str,
              children: Children, name: str) -> None:
    """Poll GET url until it answers 200 (or the child exits, or the time is up)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise Unmeasured(f"{what} exited with code {proc.returncode} before it was ready:\n"
                                 + children.log_tail(name))
            try:
                resp = client.get(url)
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}"
            time.sleep(0.1)
    raise Unmeasured(f"{what} was not ready within {timeout:.0f} s ({url}: {last}):\n"
                     + children.log_tail(name))


def check_answer(url: str, body: bytes, expected: Any, what: str) -> None:
    """One request before the load: the server must answer the sample with the expected output."""
    resp = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
    if resp.status_code != 200:
        raise Unmeasured(f"{what} answered the sample with HTTP {resp.status_code}: {resp.text[:300]}")
    try:
        got = resp.json()
    except ValueError:
        raise Unmeasured(f"{what} answered the sample with non-JSON: {resp.text[:300]}") from None
    if compare(expected, got, 1e-4):
        raise Unmeasured(f"{what} answered the sample with {got!r}, expected {expected!r}")


# ---------------------------------------------------------------------------------------------- load


class Wrk:
    def __init__(self, exe: str, body_file: Path, work: Path) -> None:
        self.exe = exe
        self.script = work / "post.lua"
        self.script.write_text(WRK_SCRIPT.format(body=body_file), encoding="utf-8")
        out = subprocess.run([exe, "--version"], capture_output=True, text=True)
        self.name = (out.stdout or out.stderr).splitlines()[0].split(" [")[0] if (out.stdout or out.stderr) \
            else "wrk"

    def run(self, url: str, *, concurrency: int, duration: float) -> LoadResult:
        threads = max(1, min(2, concurrency))
        cmd = [self.exe, "-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(duration))}s",
               "--timeout", "10s", "-s", str(self.script), url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("SERVE_BENCH ")), None)
        if out.returncode != 0 or line is None:
            detail = out.stderr.strip() or out.stdout.strip()
            raise Unmeasured(f"wrk failed (exit {out.returncode}): {detail}")
        d = json.loads(line.split(" ", 1)[1])
        secs = d["duration_us"] / 1e6
        done = d["requests"]
        socket_errors = {k: d[k] for k in ("connect", "read", "write", "timeout") if d[k]}
        ms = (lambda us: us / 1000 if done else None)  # noqa: E731
        return LoadResult(self.name, url, concurrency, round(secs, 3), done, done / secs,
                          (done - d["status"]) / secs, ms(d["p50_us"]), ms(d["p90_us"]), ms(d["p99_us"]),
                          ms(d["max_us"]), d["status"], socket_errors)


class PyLoad:
    """Fallback load generator (asyncio + httpx). It shares the 2 cores with the server under test."""

    name = f"python asyncio+httpx {httpx.__version__}"

    def __init__(self, body: bytes) -> None:
        self.body = body

    def run(self, url: str, *, concurrency: int, duration: float) -> LoadResult:
        return asyncio.run(self._run(url, concurrency, duration))

    async def _run(self, url: str, concurrency: int, duration: float) -> LoadResult:
        latencies: list[float] = []
        non_2xx = 0
        socket_errors: dict[str, int] = {}
        headers = {"content-type": "application/json"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
            started = time.perf_counter()
            deadline = started + duration

            async def worker() -> None:
                nonlocal non_2xx
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    try:
                        resp = await client.post(url, content=self.body, headers=headers)
                    except httpx.HTTPError as e:
                        kind = type(e).__name__
                        socket_errors[kind] = socket_errors.get(kind, 0) + 1
                        continue
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if not 200 <= resp.status_code < 300:
                        non_2xx += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            secs = time.perf_counter() - started
        done = len(latencies)
        p = (lambda q: percentile(latencies, q) if latencies else None)  # noqa: E731
        return LoadResult(self.name, url, concurrency, round(secs, 3), done, done / secs,
                          (done - non_2xx) / secs, p(50), p(90), p(99), max(latencies, default=None),
                          non_2xx, socket_errors)


def pick_loadgen(choice: str, body_file: Path, work: Path, notes: list[str]) -> Wrk | PyLoad:
    exe = shutil.which("wrk")
    if choice in ("auto", "wrk") and exe:
        return Wrk(exe, body_file, work)
    if choice == "wrk":
        raise SystemExit("--loadgen wrk: wrk is not installed (Debian: apt-get install wrk)")
    note = ("wrk not found: using the Python asyncio+httpx load generator, which competes with the server "
            "for the CPUs, so throughput figures are lower than with wrk (Debian: apt-get install wrk)"
            if choice == "auto" else "the Python asyncio+httpx load generator was chosen (--loadgen python)")
    notes.append(note)
    return PyLoad(body_file.read_bytes())


# ---------------------------------------------------------------------------------------------- phases


def measure_bare(repo: Path, body: bytes, calls: int) -> dict[str, Any]:
    """init() once, then time `calls` calls of run(sample_json) in this process."""
    os.environ["AZUREML_MODEL_DIR"] = str(repo / "model")
    spec = importlib.util.spec_from_file_location("serve_bench_score", repo / "score.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.init()
    data = body.decode("utf-8")
    for _ in range(min(500, calls)):
        module.run(data)
    times = []
    perf = time.perf_counter_ns
    for _ in range(calls):
        t0 = perf()
        module.run(data)
        times.append((perf() - t0) / 1e6)
    return {"calls": calls, "p50_ms": statistics.median(times), "p99_ms": percentile(times, 99),
            "mean_ms": statistics.fmean(times)}


def serve_modelfunc(children: Children, repo: Path, name: str, *, env_extra: dict[str, str] | None = None,
                    timeout: float = 120) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MODELFUNC_CONNECTION_STRING"}
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "modelfunc", "serve", str(repo), "--port", str(port), "--no-azurite"]
    proc = children.start(name, cmd, env=env, cwd=repo)
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, f"{base}/admin/host/status", timeout=timeout, what="modelfunc serve", children=children,
              name=name)
    return proc, base


def serve_azmlinfsrv(children: Children, repo: Path, workers: int, *, timeout: float = 120
                     ) -> tuple[subprocess.Popen[bytes], str]:
    if importlib.util.find_spec("azureml_inference_server_http") is None:
        raise Unmeasured("azureml-inference-server-http is not installed: pip install -e '.[bench]'")
    port = free_port()
    env = dict(os.environ)
    env["AZUREML_MODEL_DIR"] = str(repo / "model")
    env["GUNICORN_CMD_ARGS"] = "--no-control-socket"  # gunicorn>=24 would create ~/.gunicorn/gunicorn.ctl
    env.pop("AML_APP_ROOT", None)
    cmd = [sys.executable, "-c", AZMLINFSRV_LOOPBACK, "--entry_script", str(repo / "score.py"),
           "--port", str(port), "--worker_count", str(workers)]
    proc = children.start("azmlinfsrv", cmd, env=env, cwd=repo)
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, f"{base}/", timeout=timeout, what="azmlinfsrv", children=children, name="azmlinfsrv")
    return proc, base


def drive(loadgen: Wrk | PyLoad, url: str, args: argparse.Namespace) -> dict[str, LoadResult]:
    progress(f"    warm-up {args.warmup:g} s at concurrency {args.concurrency}")
    loadgen.run(url, concurrency=args.concurrency, duration=args.warmup)
    progress(f"    {args.duration:g} s at concurrency {args.concurrency}")
    loaded = loadgen.run(url, concurrency=args.concurrency, duration=args.duration)
    progress(f"      {loaded.rps:.0f} req/s, p50 {loaded.p50_ms or 0:.2f} ms, errors {loaded.errors}")
    progress(f"    {args.c1_duration:g} s at concurrency 1")
    single = loadgen.run(url, concurrency=1, duration=args.c1_duration)
    progress(f"      {single.rps:.0f} req/s, p50 {single.p50_ms or 0:.3f} ms, errors {single.errors}")
    return {f"c{args.concurrency}": loaded, "c1": single}


def measure_blob(children: Children, example: Path, work: Path, runs: int) -> dict[str, Any]:
    from modelfunc.azurite import Azurite
    from modelfunc.config import load_project
    from modelfunc.roundtrip.blob import run_blob_test

    repo = work / "blob-repo"
    shutil.copytree(example, repo, ignore=shutil.ignore_patterns("build", "__pycache__"))
    project = load_project(repo)
    if project.trigger.type != "blob":
        raise Unmeasured(f"{example} does not have a blob trigger")
    with Azurite(location=work / "azurite") as azurite:
        conn = azurite.connection_string
        progress(f"    Azurite on 127.0.0.1:{azurite.port}")
        proc, base = serve_modelfunc(children, repo, "modelfunc-blob",
                                     env_extra={"MODELFUNC_CONNECTION_STRING": conn})
        try:
            warm = run_blob_test(project, conn, timeout=60)  # first blob: connections, receipts container
            if not warm.passed:
                raise Unmeasured(f"the warm-up blob round trip failed: {warm.error or warm.mismatches}")
            latencies, failures = [], []
            for _ in range(runs):
                report = run_blob_test(project, conn, timeout=60)
                if report.passed and report.latency_ms is not None:
                    latencies.append(report.latency_ms)
                else:
                    failures.append(report.error or f"{len(report.mismatches)} mismatch(es)")
            status = httpx.get(f"{base}/admin/host/status", timeout=5).json()
        finally:
            children.stop(proc)
    result = {"runs": runs, "passed": len(latencies), "failed": len(failures), "failures": failures[:5],
              "poll_interval_s": 0.2, "host_listener": status.get("blob_listeners")}
    if latencies:
        result.update(p50_ms=statistics.median(latencies), min_ms=min(latencies), max_ms=max(latencies),
                      p90_ms=percentile(latencies, 90))
    return result


# ---------------------------------------------------------------------------------------------- report


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over `seconds` (Linux /proc/stat), to flag a machine that is not quiet."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def verdict(value: float | None, ok: bool | None, why: str | None = None) -> str:
    if value is None or ok is None:
        return f"NOT MEASURED{f' ({why})' if why else ''}"
    return "met" if ok else "NOT MET"


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    http = results["http"]
    mf, az = http.get("modelfunc", {}), http.get("azmlinfsrv", {})
    ck = f"c{args.concurrency}"

    def cell(server: dict[str, Any], key: str, attr: str, spec: str) -> str:
        r = server.get(key)
        if r is None:
            return "n/a"
        value = r.get(attr)
        text = fmt(value, spec) if not isinstance(value, str) else value
        return text

    lines = []
    lines.append(f"load generator: {results['loadgen']}; {args.concurrency} connections for "
                 f"{args.duration:g} s (after {args.warmup:g} s warm-up), then 1 connection for {args.c1_duration:g} s")
    lines.append(f"azmlinfsrv workers: {args.azml_workers}; score.py: {results['score_py']}")
    lines.append("")
    w0, w1 = 34, 18
    lines.append(f"{'':{w0}}{'modelfunc serve':>{w1}}{'azmlinfsrv':>{w1}}")
    rows = [
        (f"throughput c={args.concurrency} (req/s)", ck, "rps", ".0f"),
        (f"p50 c={args.concurrency} (ms)", ck, "p50_ms", ".2f"),
        (f"p99 c={args.concurrency} (ms)", ck, "p99_ms", ".2f"),
        (f"non-2xx / socket errors c={args.concurrency}", ck, "_errs", ""),
        ("throughput c=1 (req/s)", "c1", "rps", ".0f"),
        ("p50 c=1 (ms)", "c1", "p50_ms", ".3f"),
        ("p99 c=1 (ms)", "c1", "p99_ms", ".3f"),
        ("non-2xx / socket errors c=1", "c1", "_errs", ""),
    ]
    for label, key, attr, spec in rows:
        cells = []
        for server in (mf, az):
            if attr == "_errs":
                r = server.get(key)
                if r is None:
                    cells.append("n/a")
                else:
                    sock = sum(r["socket_errors"].values())
                    cells.append(f"{r['non_2xx']} / {sock}" + ("  ERRORS" if r["errors"] else ""))
            else:
                cells.append(cell(server, key, attr, spec))
        lines.append(f"{label:{w0}}{cells[0]:>{w1}}{cells[1]:>{w1}}")
    bare = results.get("bare_run") or {}
    lines.append(f"{'bare run() in-process p50 (ms)':{w0}}{fmt(bare.get('p50_ms'), '.4f'):>{w1}}"
                 f"{'(same run())':>{w1}}")
    over = results.get("overhead_ms") or {}
    lines.append(f"{'p50 c=1 minus bare run() (ms)':{w0}}{fmt(over.get('modelfunc'), '.3f'):>{w1}}"
                 f"{fmt(over.get('azmlinfsrv'), '.3f'):>{w1}}")
    lines.extend(closing_lines(results, 44, 14, 12))
    return "\n".join(lines)


def goals(results: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    http = results["http"]
    ck = f"c{args.concurrency}"
    out = []
    phase = {0: "http", 1: "http", 2: "blob"}

    def clean(server: str, key: str) -> dict[str, Any] | None:
        r = http.get(server, {}).get(key)
        return r if r and r["clean"] else None

    mf, az = clean("modelfunc", ck), clean("azmlinfsrv", ck)
    ratio = mf["rps"] / az["rps"] if mf and az and az["rps"] else None
    out.append({"name": f"throughput modelfunc / azmlinfsrv (c={args.concurrency})", "value": ratio,
                "display": fmt(ratio, ".2f") + "x" if ratio is not None else "n/a",
                "target": f">= {GOAL_RATIO}x",
                "result": verdict(ratio, ratio >= GOAL_RATIO if ratio is not None else None,
                                  None if ratio is not None else "a load run failed or had errors")})
    over = (results.get("overhead_ms") or {}).get("modelfunc")
    out.append({"name": "p50 overhead over bare run() (c=1)", "value": over,
                "display": fmt(over, ".3f") + " ms" if over is not None else "n/a",
                "target": f"<= {GOAL_OVERHEAD_MS:g} ms",
                "result": verdict(over, over <= GOAL_OVERHEAD_MS if over is not None else None)})
    blob = (results.get("blob") or {}).get("p50_ms")
    blob_s = blob / 1000 if blob is not None else None
    n = (results.get("blob") or {}).get("passed", 0)
    out.append({"name": f"blob round-trip p50 on Azurite (n={n})", "value": blob_s,
                "display": fmt(blob_s, ".3f") + " s" if blob_s is not None else "n/a",
                "target": f"<= {GOAL_BLOB_S:g} s",
                "result": verdict(blob_s, blob_s <= GOAL_BLOB_S if blob_s is not None else None)})
    for i, g in enumerate(out):
        if phase[i] in args.skip:
            g["result"] = "skipped"
    return out


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each measured load run")
    p.add_argument("--concurrency", type=int, default=16, help="connections of the load run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load per server")
    p.add_argument("--c1-duration", type=float, default=5.0, help="seconds of the concurrency-1 latency run")
    p.add_argument("--bare-calls", type=int, default=5000, help="timed in-process run() calls")
    p.add_argument("--blob-runs", type=int, default=20, help="blob round trips (after one warm-up)")
    p.add_argument("--azml-workers", type=int, default=1, help="azmlinfsrv --worker_count (its default is 1)")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                   help="auto = wrk when installed, else the Python client")
    p.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE,
                   help="model repo with a plain (undecorated) score.py and a blob trigger")
    p.add_argument("--skip", action="append", default=[], choices=["http", "blob"], help="leave a phase out")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    args = p.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.c1_duration <= 0:
        p.error("--concurrency must be >= 1 and the durations > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    example = args.example.resolve()
    work, children = start_run("serve-bench-")
    notes: list[str] = []
    unmeasured: list[str] = []
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "config": {"duration_s": args.duration, "concurrency": args.concurrency, "warmup_s": args.warmup,
                   "c1_duration_s": args.c1_duration, "bare_calls": args.bare_calls,
                   "blob_runs": args.blob_runs, "azml_workers": args.azml_workers, "example": str(example)},
        "http": {}, "notes": notes, "unmeasured": unmeasured,
    }
    interrupted = False
    try:
        repo = work / "http-repo"
        shutil.copytree(example, repo, ignore=shutil.ignore_patterns("build", "__pycache__"))
        (repo / "modelfunc.yaml").write_text(HTTP_CONFIG, encoding="utf-8")
        body_file = repo / "samples" / "input.json"
        body = body_file.read_bytes()
        expected = json.loads((repo / "samples" / "expected.json").read_text(encoding="utf-8"))
        results["score_py"] = str(example / "score.py")

        busy = cpu_busy()
        results["machine"]["cpu_busy_before"] = busy
        if busy is not None and busy > 0.15:
            notes.append(f"the machine was not idle before the run ({busy:.0%} of the CPUs busy with other "
                         "processes): the numbers are lower and noisier than on a quiet machine")
        progress(f"==> bare run(): init() once, {args.bare_calls} timed calls")
        try:
            results["bare_run"] = measure_bare(repo, body, args.bare_calls)
            progress(f"    p50 {results['bare_run']['p50_ms']:.4f} ms")
        except Exception as e:  # noqa: BLE001
            unmeasured.append(f"bare run(): {type(e).__name__}: {e}")

        loadgen = pick_loadgen(args.loadgen, body_file, work, notes)
        results["loadgen"] = loadgen.name
        if "http" not in args.skip:
            servers = [
                ("modelfunc", "modelfunc serve", "/api/score",
                 lambda: serve_modelfunc(children, repo, "modelfunc-http")),
                ("azmlinfsrv", "azmlinfsrv", "/score",
                 lambda: serve_azmlinfsrv(children, repo, args.azml_workers)),
            ]
            for key, what, path, start in servers:
                progress(f"==> {what}")
                proc = None
                try:
                    proc, base = start()
                    url = base + path
                    progress(f"    ready at {url}")
                    check_answer(url, body, expected, what)
                    runs = drive(loadgen, url, args)
                    results["http"][key] = {k: r.to_dict() for k, r in runs.items()}
                    for k, r in runs.items():
                        if not r.clean:
                            unmeasured.append(
                                f"{what} {k}: the load run had {r.non_2xx} non-2xx responses and "
                                f"socket errors {r.socket_errors or 0} of {r.requests} requests "
                                f"(log: {children.log_dir})")
                except Unmeasured as e:
                    unmeasured.append(f"{what}: {e}")
                finally:
                    if proc is not None:
                        children.stop(proc)
            bare_p50 = (results.get("bare_run") or {}).get("p50_ms")
            results["overhead_ms"] = {}
            for key in ("modelfunc", "azmlinfsrv"):
                c1 = results["http"].get(key, {}).get("c1")
                if c1 and c1["clean"] and bare_p50 is not None:
                    results["overhead_ms"][key] = c1["p50_ms"] - bare_p50

        if "blob" not in args.skip:
            progress(f"==> blob round trip: Azurite + modelfunc serve, {args.blob_runs} runs")
            try:
                results["blob"] = measure_blob(children, example, work, args.blob_runs)
                b = results["blob"]
                progress(f"    p50 {fmt(b.get('p50_ms'), '.0f')} ms, {b['failed']} failed")
                if b["failed"]:
                    unmeasured.append(
                        f"blob: {b['failed']} of {b['runs']} round trips failed: {b['failures']}")
            except Exception as e:  # noqa: BLE001 - Azurite missing, storage errors, ...
                unmeasured.append(f"blob round trip: {type(e).__name__}: {e}")
    except KeyboardInterrupt:
        interrupted = True
        unmeasured.append("interrupted")
    except Exception as e:  # noqa: BLE001
        unmeasured.append(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        children.stop_all()
        if not interrupted:
            busy = cpu_busy()
            results["machine"]["cpu_busy_after"] = busy
            if busy is not None and busy > 0.15:
                notes.append(f"other processes kept {busy:.0%} of the CPUs busy right after the run: "
                             "they may have competed with the servers during it")
        results.setdefault("loadgen", "none")
        results.setdefault("score_py", str(example / "score.py"))
        results["goals"] = goals(results, args)
        print()
        print(render(results, args))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
            print(f"\nwrote {args.json}")
        if args.keep or (unmeasured and not interrupted):
            print(f"server logs: {work / 'logs'}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        return 130
    return 1 if unmeasured else 0


if __name__ == "__main__":
    sys.exit(main())
