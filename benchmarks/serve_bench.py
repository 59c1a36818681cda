"""Benchmark `modelfunc serve` against azmlinfsrv (azureml-inference-server-http) on the same score.py.

One run measures, for each of two plain undecorated score.py and their models — the blob example
(examples/diabetes-blob: numpy on a JSON model) and a scikit-learn Ridge regression (a joblib model, numpy
input, the Azure ML docs' score.py) written by the benchmark:

a) a bare in-process ``run()`` call (``init()`` once, then N timed calls) — the floor;
b/c) ``modelfunc serve`` (http trigger, POST /api/score) with 1 worker process and with N (``--workers``,
   default: one per CPU; the app setting FUNCTIONS_WORKER_PROCESS_COUNT), and ``azmlinfsrv`` (POST /score,
   its default of 1 worker), one at a time, driven by the same load generator (wrk when installed, else an
   asyncio+httpx client) at 1, 16 and 64 connections for a fixed duration each after a warm-up;
d) the blob round trip on Azurite: ``modelfunc serve`` for the blob example, then
   ``modelfunc.roundtrip.blob.run_blob_test`` N times;
e) one table per script with both sides and their ratios, the goals, and the numbers as JSON (``--json``).

``--profile DIR`` also records the 1-worker host under 16 connections with py-spy (an extra load run, not
measured) and writes its stacks (collapsed) and a summary (where the time goes) there.

It is a benchmark, not a test: a missed goal does not fail the run. The exit code is 1 only when a
figure could not be measured (a server did not start, a load run had errors, a blob round trip failed).

    .venv/bin/python benchmarks/serve_bench.py [--duration 10] [--workers 2] [--scripts example,ridge] [--json F]
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
from _common import Children, Unmeasured, closing_lines, progress, start_run, tally_stacks
from modelfunc.compare import compare

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXAMPLE = ROOT / "examples" / "diabetes-blob"
AML_VENV_PYTHON = ROOT / ".venv-aml" / "bin" / "python"  # azmlinfsrv's venv of its own (the Makefile's)

GOAL_RATIO = 3.0  # modelfunc / azmlinfsrv throughput at GOAL_CONNECTIONS
GOAL_CONNECTIONS = 16
GOAL_P99_RATIO = 1.0  # modelfunc p99 / azmlinfsrv p99 at GOAL_CONNECTIONS
GOAL_OVERHEAD_MS = 0.3  # modelfunc p50 at concurrency 1 minus the bare run() p50
GOAL_BLOB_S = 0.5  # blob round-trip p50

# The Azure ML docs' score.py for a scikit-learn model (how-to-deploy-and-where), reading its model from the
# model folder as azmlinfsrv and the local host both set AZUREML_MODEL_DIR.
RIDGE_SCORE_PY = """\
import json
import os

import joblib
import numpy as np

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
"""
RIDGE_ENVIRONMENT = """\
name: ridge
dependencies:
  - python={python}
  - pip
  - pip:
      - azure-functions
      - numpy=={numpy}
      - scikit-learn=={sklearn}
      - joblib=={joblib}
"""

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
    spec = importlib.util.spec_from_file_location(f"serve_bench_score_{repo.name}", repo / "score.py")
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
            "mean_ms": statistics.fmean(times), "answer": module.run(data)}


def example_repo(example: Path, work: Path) -> Path:
    repo = work / "example"
    shutil.copytree(example, repo, ignore=shutil.ignore_patterns("build", "__pycache__"))
    (repo / "modelfunc.yaml").write_text(HTTP_CONFIG, encoding="utf-8")
    return repo


def ridge_repo(example: Path, work: Path) -> Path:
    """A model repo with the docs' scikit-learn score.py and a Ridge regression on scikit-learn's diabetes data,
    pinned to the versions of this Python's scikit-learn, numpy and joblib (the app's environment gets the same)."""
    try:
        import joblib
        import numpy
        import sklearn
        from sklearn.datasets import load_diabetes
        from sklearn.linear_model import Ridge
    except ImportError as e:
        raise Unmeasured(f"the Ridge script needs scikit-learn in this Python ({e}): pip install -e '.[bench]'") \
            from None
    repo = work / "ridge"
    (repo / "model").mkdir(parents=True)
    (repo / "samples").mkdir()
    x, y = load_diabetes(return_X_y=True)
    joblib.dump(Ridge(alpha=0.03).fit(x, y), repo / "model" / "model.pkl")
    (repo / "score.py").write_text(RIDGE_SCORE_PY, encoding="utf-8")
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (repo / "environment.yml").write_text(RIDGE_ENVIRONMENT.format(
        python=python, numpy=numpy.__version__, sklearn=sklearn.__version__, joblib=joblib.__version__),
        encoding="utf-8")
    shutil.copy(example / "samples" / "input.json", repo / "samples" / "input.json")
    (repo / "modelfunc.yaml").write_text(HTTP_CONFIG.replace("serve-bench", "serve-bench-ridge"), encoding="utf-8")
    return repo


SCRIPTS = {"example": example_repo, "ridge": ridge_repo}


MODELFUNC_FROM = "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'modelfunc'; " \
                 "from modelfunc.cli import main; main()"
MODELFUNC_SRC: list[str] = []  # --modelfunc-src: another tree's modelfunc (e.g. HEAD's, for a before/after run)


def serve_modelfunc(children: Children, repo: Path, name: str, *, workers: int = 1,
                    env_extra: dict[str, str] | None = None, timeout: float = 300
                    ) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MODELFUNC_CONNECTION_STRING"}
    env.update(env_extra or {})
    ready = repo / f".ready-{name}.json"
    ready.unlink(missing_ok=True)
    # The app setting rather than --workers: the same on the Functions host (FUNCTIONS_WORKER_PROCESS_COUNT).
    modelfunc = [sys.executable, "-c", MODELFUNC_FROM, *MODELFUNC_SRC] if MODELFUNC_SRC else \
        [sys.executable, "-m", "modelfunc"]
    cmd = [*modelfunc, "serve", str(repo), "--port", str(port), "--no-azurite",
           "--setting", f"FUNCTIONS_WORKER_PROCESS_COUNT={workers}", "--ready-file", str(ready)]
    proc = children.start(name, cmd, env=env, cwd=repo)
    deadline = time.monotonic() + timeout
    while not ready.exists():  # written once every worker is up
        if proc.poll() is not None:
            raise Unmeasured(f"modelfunc serve exited with code {proc.returncode} before it was ready:\n"
                             + children.log_tail(name))
        if time.monotonic() > deadline:
            raise Unmeasured(f"modelfunc serve was not ready within {timeout:.0f} s:\n" + children.log_tail(name))
        time.sleep(0.1)
    if workers > 1 and json.loads(ready.read_text(encoding="utf-8")).get("workers") != workers:
        raise Unmeasured(f"this modelfunc serve does not run {workers} worker processes "
                         "(FUNCTIONS_WORKER_PROCESS_COUNT): an older modelfunc?")
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, f"{base}/admin/host/status", timeout=30, what="modelfunc serve", children=children, name=name)
    return proc, base


def azml_python(given: Path | None) -> str:
    """The Python azmlinfsrv runs with: --azml-python, else the Makefile's .venv-aml, else this one."""
    if given is not None:
        return str(given)
    if importlib.util.find_spec("azureml_inference_server_http") is None and AML_VENV_PYTHON.exists():
        return str(AML_VENV_PYTHON)
    return sys.executable


def serve_azmlinfsrv(children: Children, repo: Path, workers: int, *, python: str, timeout: float = 120
                     ) -> tuple[subprocess.Popen[bytes], str]:
    check = subprocess.run([python, "-c", "import azureml_inference_server_http"], capture_output=True)
    if check.returncode != 0:
        raise Unmeasured(f"azureml-inference-server-http is not installed in {python}: make .venv-aml/.installed "
                         "(or pip install -e '.[bench]', or --azml-python)")
    port = free_port()
    env = dict(os.environ)
    env["AZUREML_MODEL_DIR"] = str(repo / "model")
    env["GUNICORN_CMD_ARGS"] = "--no-control-socket"  # gunicorn>=24 would create ~/.gunicorn/gunicorn.ctl
    env.pop("AML_APP_ROOT", None)
    cmd = [python, "-c", AZMLINFSRV_LOOPBACK, "--entry_script", str(repo / "score.py"),
           "--port", str(port), "--worker_count", str(workers)]
    proc = children.start("azmlinfsrv", cmd, env=env, cwd=repo)
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, f"{base}/", timeout=timeout, what="azmlinfsrv", children=children, name="azmlinfsrv")
    return proc, base


def drive(loadgen: Wrk | PyLoad, url: str, args: argparse.Namespace) -> dict[str, LoadResult]:
    progress(f"    warm-up {args.warmup:g} s at {GOAL_CONNECTIONS} connections")
    loadgen.run(url, concurrency=GOAL_CONNECTIONS, duration=args.warmup)
    out = {}
    for c in args.connections:
        secs = args.c1_duration if c == 1 else args.duration
        progress(f"    {secs:g} s at {c} connection{'s' if c > 1 else ''}")
        r = loadgen.run(url, concurrency=c, duration=secs)
        progress(f"      {r.rps:.0f} req/s, p50 {r.p50_ms or 0:.3f} ms, p99 {r.p99_ms or 0:.3f} ms, errors {r.errors}")
        out[f"c{c}"] = r
    return out


def host_pid(proc: subprocess.Popen[bytes]) -> int | None:
    """The local host's process under `modelfunc serve` (its child: the host, or the workers' supervisor)."""
    try:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def profile_host(loadgen: Wrk | PyLoad, proc: subprocess.Popen[bytes], url: str, out: Path, label: str,
                 seconds: float) -> str:
    """py-spy on the host while 16 connections load it (an extra run, not measured): the collapsed stacks of
    the threads holding the GIL, and a summary of where that time goes."""
    import threading

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    pid = host_pid(proc)
    if pid is None or not Path(spy).exists():
        raise Unmeasured("--profile needs py-spy (pip install py-spy) and /proc")
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{label}.collapsed.txt"
    load = threading.Thread(target=loadgen.run, args=(url,), kwargs={"concurrency": GOAL_CONNECTIONS,
                                                                     "duration": seconds + 3})
    load.start()
    time.sleep(1.5)
    rec = subprocess.run([spy, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "250", "-f",
                          "raw", "-o", str(raw), "--threads", "--gil"], capture_output=True, text=True)
    load.join()
    if rec.returncode != 0:
        raise Unmeasured(f"py-spy failed: {rec.stderr.strip()[-300:]}")
    summary = out / f"{label}.summary.txt"
    summary.write_text(summarize_stacks(raw, f"{label}: {GOAL_CONNECTIONS} connections, py-spy --gil"),
                       encoding="utf-8")
    return str(summary)


def summarize_stacks(raw: Path, title: str, top: int = 30) -> str:
    """Self and inclusive shares of the samples per function, and per thread, of py-spy's collapsed stacks."""
    import re

    threads: dict[str, int] = {}
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = re.sub(r"\(\d+\)", "", frames[0]).strip()
        thread = re.sub(r"_\d+$|-\d+$", "", thread.split(":")[-1].strip().strip('"'))
        threads[thread] = threads.get(thread, 0) + n
        stacks.append(([re.sub(r" \((?:.*/)?([^/]*?):\d+\)$", r" (\1)", f) for f in frames[1:]] or frames[:1], n))
    own, incl = tally_stacks(stacks)
    total = sum(own.values())
    lines = [title, f"samples holding the GIL: {total}", "", "by thread:"]
    pct = (lambda v: f"{100 * v / max(1, total):5.1f}%")  # noqa: E731
    lines += [f"  {pct(v)} {k}" for k, v in sorted(threads.items(), key=lambda kv: -kv[1])]
    lines += ["", "self (the function itself):"]
    lines += [f"  {pct(v)} {k}" for k, v in sorted(own.items(), key=lambda kv: -kv[1])[:top]]
    lines += ["", "inclusive (the function and what it calls):"]
    lines += [f"  {pct(v)} {k}" for k, v in sorted(incl.items(), key=lambda kv: -kv[1])[:top]]
    return "\n".join(lines) + "\n"


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


def server_keys(args: argparse.Namespace) -> list[tuple[str, str]]:
    keys = [("modelfunc-1", "modelfunc 1 worker")]
    if args.workers > 1:
        keys.append((f"modelfunc-{args.workers}", f"modelfunc {args.workers} workers"))
    keys.append(("azmlinfsrv", f"azmlinfsrv {args.azml_workers}w"))
    return keys


def render_script(name: str, res: dict[str, Any], args: argparse.Namespace) -> list[str]:
    http = res.get("http", {})
    keys = server_keys(args)
    w0, w1 = 30, 20
    lines = [f"--- {name}: {res.get('score_py', '')}", f"{'':{w0}}" + "".join(f"{t:>{w1}}" for _, t in keys)]
    for c in args.connections:
        ck = f"c{c}"
        for label, attr, spec in (("req/s", "rps", ".0f"), ("p50 (ms)", "p50_ms", ".3f"), ("p99 (ms)", "p99_ms", ".3f"),
                                  ("non-2xx / socket errors", "_errs", "")):
            cells = []
            for key, _ in keys:
                r = http.get(key, {}).get(ck)
                if r is None:
                    cells.append("n/a")
                elif attr == "_errs":
                    cells.append(f"{r['non_2xx']} / {sum(r['socket_errors'].values())}"
                                 + ("  ERRORS" if r["errors"] else ""))
                else:
                    cells.append(fmt(r.get(attr), spec))
            lines.append(f"{f'c={c} {label}':{w0}}" + "".join(f"{x:>{w1}}" for x in cells))
        az = http.get("azmlinfsrv", {}).get(ck)
        cells = []
        for key, _ in keys[:-1]:
            r = http.get(key, {}).get(ck)
            cells.append(f"{r['rps'] / az['rps']:.2f}x / {r['p99_ms'] / az['p99_ms']:.2f}x"
                         if r and az and az["rps"] and r["p99_ms"] and az["p99_ms"] else "n/a")
        lines.append(f"{f'c={c} vs azmlinfsrv req/s / p99':{w0}}" + "".join(f"{x:>{w1}}" for x in cells))
    bare = res.get("bare_run") or {}
    over = res.get("overhead_ms") or {}
    lines.append(f"{'bare run() in-process p50 (ms)':{w0}}{fmt(bare.get('p50_ms'), '.4f'):>{w1}}")
    lines.append(f"{'p50 c=1 minus bare run() (ms)':{w0}}"
                 + "".join(f"{fmt(over.get(key), '.3f'):>{w1}}" for key, _ in keys))
    return lines


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"load generator: {results['loadgen']}; {', '.join(map(str, args.connections))} connections, "
             f"{args.duration:g} s each ({args.c1_duration:g} s at 1) after {args.warmup:g} s of warm-up; "
             f"the machine: {results['machine']['cpus']} CPUs, load average before {results['machine'].get('load')}",
             f"modelfunc: {results['config']['modelfunc_src']}", ""]
    for name, res in results["scripts"].items():
        lines += render_script(name, res, args) + [""]
    lines.extend(closing_lines(results, 58, 14, 12))
    return "\n".join(lines)


def goals(results: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    ck = f"c{GOAL_CONNECTIONS}"

    def clean(http: dict[str, Any], server: str, key: str) -> dict[str, Any] | None:
        r = http.get(server, {}).get(key)
        return r if r and r["clean"] else None

    for name, res in results["scripts"].items():
        http = res.get("http", {})
        az = clean(http, "azmlinfsrv", ck)
        for key, title in server_keys(args)[:-1]:
            mf = clean(http, key, ck)
            ratio = mf["rps"] / az["rps"] if mf and az and az["rps"] else None
            why = None if ratio is not None else "a load run failed or had errors"
            out.append({"name": f"{name}: {title} / azmlinfsrv req/s (c={GOAL_CONNECTIONS})", "value": ratio,
                        "display": fmt(ratio, ".2f") + "x" if ratio is not None else "n/a",
                        "target": f">= {GOAL_RATIO:g}x", "phase": "http",
                        "result": verdict(ratio, ratio >= GOAL_RATIO if ratio is not None else None, why)})
            p99 = mf["p99_ms"] / az["p99_ms"] if mf and az and az["p99_ms"] else None
            out.append({"name": f"{name}: {title} p99 / azmlinfsrv p99 (c={GOAL_CONNECTIONS})", "value": p99,
                        "display": fmt(p99, ".2f") + "x" if p99 is not None else "n/a",
                        "target": f"<= {GOAL_P99_RATIO:g}x", "phase": "http",
                        "result": verdict(p99, p99 <= GOAL_P99_RATIO if p99 is not None else None, why)})
        over = (res.get("overhead_ms") or {}).get("modelfunc-1")
        out.append({"name": f"{name}: p50 over bare run() (c=1, 1 worker)", "value": over,
                    "display": fmt(over, ".3f") + " ms" if over is not None else "n/a",
                    "target": f"<= {GOAL_OVERHEAD_MS:g} ms", "phase": "http",
                    "result": verdict(over, over <= GOAL_OVERHEAD_MS if over is not None else None)})
    blob = (results.get("blob") or {}).get("p50_ms")
    blob_s = blob / 1000 if blob is not None else None
    n = (results.get("blob") or {}).get("passed", 0)
    out.append({"name": f"blob round-trip p50 on Azurite (n={n})", "value": blob_s,
                "display": fmt(blob_s, ".3f") + " s" if blob_s is not None else "n/a",
                "target": f"<= {GOAL_BLOB_S:g} s", "phase": "blob",
                "result": verdict(blob_s, blob_s <= GOAL_BLOB_S if blob_s is not None else None)})
    for g in out:
        if g.pop("phase") in args.skip:
            g["result"] = "skipped"
    return out


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each measured load run")
    p.add_argument("--connections", default="1,16,64", help="the load runs' connections, comma-separated")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load per server")
    p.add_argument("--c1-duration", type=float, default=5.0, help="seconds of the 1-connection run")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                   help="modelfunc's worker processes in the second run (1 is always run)")
    p.add_argument("--scripts", default="example,ridge", help=f"which score.py: {', '.join(SCRIPTS)}")
    p.add_argument("--bare-calls", type=int, default=5000, help="timed in-process run() calls")
    p.add_argument("--blob-runs", type=int, default=20, help="blob round trips (after one warm-up)")
    p.add_argument("--azml-workers", type=int, default=1, help="azmlinfsrv --worker_count (its default is 1)")
    p.add_argument("--azml-python", type=Path, help="the Python with azureml-inference-server-http (and, for the "
                   "Ridge script, scikit-learn)  [default: .venv-aml's when this one has no azmlinfsrv]")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                   help="auto = wrk when installed, else the Python client")
    p.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE,
                   help="model repo with a plain (undecorated) score.py and a blob trigger")
    p.add_argument("--skip", action="append", default=[], choices=["http", "blob"], help="leave a phase out")
    p.add_argument("--profile", type=Path, metavar="DIR", help="also profile the 1-worker host with py-spy into DIR")
    p.add_argument("--modelfunc-src", type=Path, metavar="DIR", help="serve with the modelfunc package in DIR "
                   "(e.g. `git archive HEAD generator | tar -x -C /tmp/head` and /tmp/head/generator): a before/after "
                   "run with the same benchmark")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    args = p.parse_args(argv)
    try:
        args.connections = sorted({int(c) for c in args.connections.split(",") if c.strip()})
    except ValueError:
        p.error("--connections: numbers separated by commas, e.g. 1,16,64")
    if not args.connections or min(args.connections) < 1 or args.duration <= 0 or args.c1_duration <= 0:
        p.error("--connections must be >= 1 and the durations > 0")
    if GOAL_CONNECTIONS not in args.connections:
        args.connections = sorted({*args.connections, GOAL_CONNECTIONS})
    args.scripts = [s.strip() for s in args.scripts.split(",") if s.strip()]
    unknown = [s for s in args.scripts if s not in SCRIPTS]
    if unknown or not args.scripts:
        p.error(f"--scripts: {', '.join(unknown) or 'none'}: choose from {', '.join(SCRIPTS)}")
    if not 1 <= args.workers <= 10:
        p.error("--workers: 1 to 10 (the Functions host's limit for FUNCTIONS_WORKER_PROCESS_COUNT)")
    return args


def bench_script(name: str, repo: Path, args: argparse.Namespace, loadgen: Wrk | PyLoad, children: Children,
                 unmeasured: list[str]) -> dict[str, Any]:
    res: dict[str, Any] = {"score_py": str(repo / "score.py"), "http": {}}
    body_file = repo / "samples" / "input.json"
    body = body_file.read_bytes()
    progress(f"==> {name}: bare run(): init() once, {args.bare_calls} timed calls")
    try:
        bare = measure_bare(repo, body, args.bare_calls)
        answer = bare.pop("answer")
        res["bare_run"] = bare
        progress(f"    p50 {bare['p50_ms']:.4f} ms")
        expected = repo / "samples" / "expected.json"
        if not expected.exists():
            expected.write_text(json.dumps(answer) + "\n", encoding="utf-8")
    except Exception as e:  # noqa: BLE001
        unmeasured.append(f"{name}: bare run(): {type(e).__name__}: {e}")
        return res
    expected_answer = json.loads((repo / "samples" / "expected.json").read_text(encoding="utf-8"))
    for key, what in server_keys(args):
        progress(f"==> {name}: {what}")
        proc = None
        try:
            if key == "azmlinfsrv":
                proc, base = serve_azmlinfsrv(children, repo, args.azml_workers, python=azml_python(args.azml_python))
                path = "/score"
            else:
                n = int(key.split("-")[1])
                proc, base = serve_modelfunc(children, repo, f"modelfunc-{name}-{n}w", workers=n)
                path = "/api/score"
            url = base + path
            progress(f"    ready at {url}")
            check_answer(url, body, expected_answer, what)
            runs = drive(loadgen, url, args)
            res["http"][key] = {k: r.to_dict() for k, r in runs.items()}
            for k, r in runs.items():
                if not r.clean:
                    unmeasured.append(f"{name}: {what} {k}: the load run had {r.non_2xx} non-2xx responses and "
                                      f"socket errors {r.socket_errors or 0} of {r.requests} requests "
                                      f"(log: {children.log_dir})")
            if args.profile and key == "modelfunc-1":
                progress("    profiling (py-spy, an extra run)")
                res["profile"] = profile_host(loadgen, proc, url, args.profile, f"{name}-c{GOAL_CONNECTIONS}",
                                              min(args.duration, 8))
        except Unmeasured as e:
            unmeasured.append(f"{name}: {what}: {e}")
        finally:
            if proc is not None:
                children.stop(proc)
    bare_p50 = res["bare_run"]["p50_ms"]
    res["overhead_ms"] = {key: c1["p50_ms"] - bare_p50 for key, server in res["http"].items()
                          if (c1 := server.get("c1")) and c1["clean"]}
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.modelfunc_src:
        MODELFUNC_SRC[:] = [str(args.modelfunc_src.resolve())]
    example = args.example.resolve()
    work, children = start_run("serve-bench-")
    notes: list[str] = []
    unmeasured: list[str] = []
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load": " ".join(f"{x:.2f}" for x in os.getloadavg())},
        "config": {"duration_s": args.duration, "connections": args.connections, "warmup_s": args.warmup,
                   "c1_duration_s": args.c1_duration, "bare_calls": args.bare_calls, "workers": args.workers,
                   "blob_runs": args.blob_runs, "azml_workers": args.azml_workers, "example": str(example),
                   "scripts": args.scripts, "modelfunc_src": str(args.modelfunc_src or "installed")},
        "scripts": {}, "notes": notes, "unmeasured": unmeasured,
    }
    interrupted = False
    try:
        busy = cpu_busy()
        results["machine"]["cpu_busy_before"] = busy
        if busy is not None and busy > 0.15:
            notes.append(f"the machine was not idle before the run ({busy:.0%} of the CPUs busy with other "
                         "processes): the numbers are lower and noisier than on a quiet machine")
        loadgen = pick_loadgen(args.loadgen, example / "samples" / "input.json", work, notes)
        results["loadgen"] = loadgen.name
        if "http" not in args.skip:
            for name in args.scripts:
                try:
                    repo = SCRIPTS[name](example, work)
                except Unmeasured as e:
                    unmeasured.append(f"{name}: {e}")
                    continue
                if isinstance(loadgen, Wrk):
                    loadgen = Wrk(loadgen.exe, repo / "samples" / "input.json", work)
                else:
                    loadgen = PyLoad((repo / "samples" / "input.json").read_bytes())
                results["scripts"][name] = bench_script(name, repo, args, loadgen, children, unmeasured)

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
