"""Blob trigger scaling: the local host's blob listener BEFORE (HEAD's localhost/blobs.py) and AFTER (this tree's),
both in one run, on the blob example (examples/diabetes-blob) and Azurite.

For each N (default 100, 1,000, 5,000, 20,000) and each side, on a fresh copy of the same Azurite data:

a) drain: N input blobs are already in the container when the host starts (uploaded once per N in parallel, the
   Azurite folder copied for each side); from the host's ``Running`` to the last one scored, in blobs/s;
b) idle: then, with those N processed by the host itself (receipts and outputs written by it: nothing faked),
   the host process's CPU (psutil: user + system) over an idle window, and Azurite's beside it;
c) latency: one new blob at a time after an idle gap, upload to its output blob, p50 over the runs;
d) checks: every input has its output, the host's ``scored`` equals the blobs uploaded (nothing scored twice),
   no failure.

A side whose drain does not finish within ``--drain-timeout`` is reported as such (its rate over the part done);
the rest of its blobs then get ``ok`` receipts written the way the host writes them, and the host is restarted,
so that b) and c) still see N processed blobs (said in the report).

    .venv/bin/python benchmarks/blob_bench.py [--sizes 100,1000,5000,20000] [--json build/blob-bench.json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import Children, Unmeasured, closing_lines, progress, publish, start_run
from nodeprofile import profiling_azurite, share, summarize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "diabetes-blob"
BLOBS = "generator/modelfunc/localhost/blobs.py"

GOAL_IDLE_CPU = 5.0  # % of one core, whatever N
GOAL_P50_S = 0.25  # at 20,000
GOAL_DRAIN = 100.0  # blobs/s at 5,000

# The host's boot (appenv.BOOT) with, for BEFORE, HEAD's blobs.py loaded beside this tree's and used by the server.
BEFORE_PATCH = """\
_old = os.environ.pop("BLOB_BENCH_BEFORE", "")
if _old:
    import modelfunc.localhost.server as _srv
    _s = importlib.util.spec_from_file_location("modelfunc.localhost.blobs_before", _old)
    _m = importlib.util.module_from_spec(_s)
    sys.modules[_s.name] = _m
    _s.loader.exec_module(_m)
    _listener = _m.BlobListener
    if "storage_log" not in __import__("inspect").signature(_listener).parameters:  # a listener without the log
        def _listener(*args, storage_log=None, _cls=_m.BlobListener, **kwargs):
            return _cls(*args, **kwargs)
    _srv.BlobListener = _listener
"""


def free_port() -> int:
    from modelfunc.azurite import free_port as _free_port

    return _free_port()


class Side:
    """One host (BEFORE or AFTER) on one Azurite."""

    def __init__(self, children: Children, app_dir: Path, env: Any, side: str, before_file: Path, conn: str,
                 storage_log: Path) -> None:
        from modelfunc.appenv.host import BOOT, host_command

        self.children, self.side, self.conn = children, side, conn
        self.port = free_port()
        args = [str(app_dir), "--port", str(self.port), "--azurite", "off", "--poll-interval", "0.2"]
        cmd, extra = host_command(env, args)
        cmd[2] = BOOT.replace("from modelfunc.localhost.__main__", BEFORE_PATCH + "from modelfunc.localhost.__main__")
        # Azurite's access log, as `modelfunc serve` and `up` give it to the host of an Azurite they started.
        self.env = {**os.environ, **extra, "MODELFUNC_CONNECTION_STRING": conn,
                    "MODELFUNC_AZURITE_LOG": str(storage_log)}
        if side == "before":
            self.env["BLOB_BENCH_BEFORE"] = str(before_file)
        self.cmd = cmd
        self.proc: subprocess.Popen[bytes] | None = None
        self.scored_before_restart = 0

    def start(self, timeout: float = 180) -> float:
        self.proc = self.children.start(f"host-{self.side}", self.cmd, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unmeasured(f"the {self.side} host exited:\n{self.children.log_tail(f'host-{self.side}')}")
            try:
                if self.status().get("state") == "Running":
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise Unmeasured(f"the {self.side} host did not start in {timeout:.0f} s")

    def status(self) -> dict[str, Any]:
        return httpx.get(f"http://127.0.0.1:{self.port}/admin/host/status", timeout=10).json()

    def listener(self) -> dict[str, Any]:
        listeners = self.status().get("blob_listeners") or {}
        return next(iter(listeners.values()))

    def scored(self) -> int:
        return self.scored_before_restart + int(self.listener()["scored"])

    def stop(self) -> None:
        if self.proc is not None:
            try:
                self.scored_before_restart = self.scored()
            except (httpx.HTTPError, StopIteration, KeyError):
                pass
            self.children.stop(self.proc)
            self.proc = None


def upload(conn: str, names: list[str], body: bytes, threads: int = 16) -> float:
    from modelfunc.storage import blob_service

    container = blob_service(conn).get_container_client("input")
    try:
        container.create_container()
    except Exception:  # noqa: BLE001, S110 - exists
        pass
    t0 = time.monotonic()
    done = [0]

    def one(name: str) -> None:
        container.get_blob_client(name).upload_blob(body, overwrite=True)
        done[0] += 1
        if done[0] % 2000 == 0:
            progress(f"      uploaded {done[0]}/{len(names)}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, names))
    return len(names) / max(time.monotonic() - t0, 1e-9)


def prewrite_receipts(conn: str) -> int:
    """``ok`` receipts, as the host writes them, for input blobs the host did not get to (a drain cut short)."""
    from modelfunc.storage import blob_service

    svc = blob_service(conn)
    hosts = svc.get_container_client("azure-webjobs-hosts")
    prefix_of: dict[str, str] = {}
    have = set()
    for item in hosts.list_blobs(name_starts_with="blobreceipts/"):
        parts = item.name.split("/", 5)  # blobreceipts/<host>/<fn>/<etag>/input/<name>
        prefix_of.setdefault("p", "/".join(parts[:3]))
        have.add((parts[5], parts[3]))
    if "p" not in prefix_of:
        raise Unmeasured("no receipt to learn the host id from")
    todo = [(b.name, (b.etag or "").strip('"')) for b in svc.get_container_client("input").list_blobs()
            if (b.name, (b.etag or "").strip('"')) not in have]

    def one(item: tuple[str, str]) -> None:
        hosts.get_blob_client(f"{prefix_of['p']}/{item[1]}/input/{item[0]}").upload_blob(
            b"", overwrite=True, metadata={"status": "ok", "attempts": "1"})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, todo))
    return len(todo)


def cpu_of(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def measure_side(side: Side, n: int, azurite_pid: int, args: argparse.Namespace, body: bytes) -> dict[str, Any]:
    from modelfunc.storage import blob_service

    out: dict[str, Any] = {"n": n}
    progress(f"    [{side.side}] host start, drain of {n} blobs")
    t0 = side.start()
    assert side.proc is not None
    drain_cpu = cpu_of(side.proc.pid), cpu_of(azurite_pid)
    deadline = t0 + args.drain_timeout
    scored = 0
    while time.monotonic() < deadline:
        scored = side.scored()
        if scored >= n:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    out.update(drain_s=round(elapsed, 2), drained=scored, drain_rate=round(scored / elapsed, 1),
               drain_complete=scored >= n,
               drain_host_cpu_pct=round(100 * (cpu_of(side.proc.pid) - drain_cpu[0]) / elapsed, 1),
               drain_azurite_cpu_pct=round(100 * (cpu_of(azurite_pid) - drain_cpu[1]) / elapsed, 1))
    progress(f"      {scored}/{n} in {elapsed:.1f} s: {scored / elapsed:.1f} blobs/s (host {out['drain_host_cpu_pct']} "
             f"%, Azurite {out['drain_azurite_cpu_pct']} % of a core)")
    if scored < n:
        side.stop()
        written = prewrite_receipts(side.conn)
        out["prewritten_receipts"] = written
        progress(f"      drain cut short: {written} ok receipts written as the host would; host restarted")
        side.start()
        time.sleep(5)
    # idle
    time.sleep(args.settle)
    assert side.proc is not None
    host0, az0, w0 = cpu_of(side.proc.pid), cpu_of(azurite_pid), time.monotonic()
    time.sleep(args.idle)
    wall = time.monotonic() - w0
    out["idle_host_cpu_pct"] = round(100 * (cpu_of(side.proc.pid) - host0) / wall, 2)
    out["idle_azurite_cpu_pct"] = round(100 * (cpu_of(azurite_pid) - az0) / wall, 2)
    progress(f"      idle: host {out['idle_host_cpu_pct']} % of a core, Azurite {out['idle_azurite_cpu_pct']} %")
    # latency
    svc = blob_service(side.conn)
    lat = []
    for i in range(args.latency_runs):
        time.sleep(args.gap)
        name = f"lat-{side.side}-{n}-{i}"
        t = time.monotonic()
        svc.get_blob_client("input", f"{name}.json").upload_blob(body, overwrite=True)
        out_blob = svc.get_blob_client("output", f"{name}_out.json")
        while not out_blob.exists():
            if time.monotonic() - t > args.latency_timeout:
                raise Unmeasured(f"{side.side}: blob {name} not scored in {args.latency_timeout} s")
            time.sleep(0.02)
        lat.append(time.monotonic() - t)
    out["latency_s"] = [round(x, 3) for x in lat]
    out["latency_p50_s"] = round(statistics.median(lat), 3)
    progress(f"      latency p50 {out['latency_p50_s']} s ({', '.join(f'{x:.2f}' for x in lat)})")
    # checks
    time.sleep(1)
    listener = side.listener()
    total = side.scored()
    inputs = {b.name[:-5] for b in svc.get_container_client("input").list_blobs()}
    outputs = {b.name[:-9] for b in svc.get_container_client("output").list_blobs()}
    if "prewritten_receipts" in out:
        # Restarted: the first host's last count misses what it finished while shutting down (its receipts are
        # there, so they were not pre-written); the second host must have scored exactly the latency blobs.
        total = int(listener["scored"])
        expected = args.latency_runs
    else:
        expected = n + args.latency_runs
    out.update(scored_total=total, expected_scored=expected, failed=listener.get("failed"),
               missing_outputs=len(inputs - outputs) - out.get("prewritten_receipts", 0),
               scan=listener.get("scan"))
    out["ok"] = total == expected and not listener.get("failed") and out["missing_outputs"] == 0
    progress(f"      scored {total} (expected {expected}), missing outputs {out['missing_outputs']}, "
             f"failed {listener.get('failed')}: {'ok' if out['ok'] else 'MISMATCH'}")
    side.stop()
    return out


def run(args: argparse.Namespace, work: Path, children: Children, results: dict[str, Any]) -> None:
    from modelfunc.appenv import for_app
    from modelfunc.appgen import render
    from modelfunc.azurite import Azurite
    from modelfunc.config import load_project

    before_file = work / "blobs_before.py"
    before_file.write_text(subprocess.run(["git", "show", f"{args.before}:{BLOBS}"], cwd=ROOT, check=True,
                                          capture_output=True, text=True).stdout)
    progress(f"==> packaging {EXAMPLE.name}")
    repo = work / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("build", "__pycache__"))
    app_dir = render(load_project(repo), work / "app").app_dir.resolve()
    _, env = for_app(app_dir, progress=progress)
    body = (repo / "samples" / "input.json").read_bytes()
    seed = work / "seed"
    uploaded = 0
    for n in args.sizes:
        progress(f"==> N = {n}: uploading {n - uploaded} more input blobs")
        with Azurite(location=seed) as az:
            rate = upload(az.connection_string, [f"d-{i:06d}.json" for i in range(uploaded, n)], body)
        uploaded = n
        results["upload_rate"][str(n)] = round(rate, 1)
        progress(f"      {rate:.0f} blobs/s uploaded")
        for side_name in args.sides:
            copy = work / f"az-{side_name}-{n}"
            shutil.copytree(seed, copy, ignore=shutil.ignore_patterns("azurite.log"))
            profile = args.azurite_profile / f"{side_name}-{n}" if args.azurite_profile else None
            try:
                with profiling_azurite(profile) if profile else contextlib.nullcontext(), \
                        Azurite(location=copy) as az:
                    from modelfunc.storage import blob_service

                    count = sum(1 for _ in blob_service(az.connection_string).get_container_client("input")
                                .list_blobs())
                    if count != n:
                        raise Unmeasured(f"the Azurite copy holds {count} input blobs, not {n}")
                    side = Side(children, app_dir, env, side_name, before_file, az.connection_string, az.access_log)
                    try:
                        assert az.process is not None
                        results["rows"].setdefault(str(n), {})[side_name] = measure_side(
                            side, n, az.process.pid, args, body)
                    finally:
                        side.stop()
            except Unmeasured as e:
                results["unmeasured"].append(f"N={n} {side_name}: {e}")
                progress(f"      NOT MEASURED: {e}")
            finally:
                shutil.rmtree(copy, ignore_errors=True)
            if profile is not None:
                read_profile(profile, results["rows"].get(str(n), {}).get(side_name))


def read_profile(directory: Path, row: dict[str, Any] | None) -> None:
    """Azurite's CPU profile of one side (its whole life: the drain, the idle window, the latency runs), summed
    into ``summary.txt`` beside it; the row gets the shares of LokiJS's look-up and of the requests that make it."""
    found = sorted(directory.glob("*.cpuprofile"), key=lambda p: p.stat().st_mtime)
    if not found or row is None:
        return
    text, shares = summarize(found[-1])
    (directory / "summary.txt").write_text(text)
    row["azurite_profile"] = {"summary": str(directory / "summary.txt"),
                              "findOne_pct": share(shares, "Collection.findOne"),
                              "createBlob_pct": share(shares, "createBlob"),
                              "getBlob_pct": share(shares, "getBlobWithLeaseUpdated")}
    progress(f"      Azurite's profile: {row['azurite_profile']['findOne_pct']} % of its busy time in LokiJS's "
             f"findOne; {directory / 'summary.txt'}")


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def render_text(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"Blob trigger scaling (examples/diabetes-blob, Azurite; BEFORE = {args.before}'s {BLOBS}, AFTER = "
             f"this tree's); load before the run: {results['load']}", ""]
    head = f"{'figure':44}{'N':>7}{'before':>12}{'after':>12}{'after/before':>14}"
    lines.append(head)
    figures = [("idle host CPU, % of a core", "idle_host_cpu_pct", "{:.1f}"),
               ("idle Azurite CPU, % of a core", "idle_azurite_cpu_pct", "{:.1f}"),
               ("one new blob, p50 s", "latency_p50_s", "{:.3f}"),
               ("drain of a backlog of N, blobs/s", "drain_rate", "{:.1f}"),
               ("  host CPU in the drain, % of a core", "drain_host_cpu_pct", "{:.1f}"),
               ("  Azurite CPU in the drain, % of a core", "drain_azurite_cpu_pct", "{:.1f}")]
    for label, key, spec in figures:
        for n, row in results["rows"].items():
            b, a = row.get("before", {}).get(key), row.get("after", {}).get(key)
            cell = [spec.format(v) if v is not None else "-" for v in (b, a)]
            for i, side in enumerate(("before", "after")):
                if key == "drain_rate" and row.get(side) and not row[side]["drain_complete"]:
                    cell[i] += "*"
            lines.append(f"{label:44}{n:>7}{cell[0]:>12}{cell[1]:>12}{ratio(a, b):>14}")
    lines.append("")
    lines.append("* drain cut short at --drain-timeout: the rate over the part done (it falls as N grows)")
    for n, row in results["rows"].items():
        for side, r in row.items():
            after = " by the host restarted after the cut drain" if "prewritten_receipts" in r else ""
            lines.append(f"check N={n} {side}: scored {r['scored_total']} of {r['expected_scored']} expected{after}, "
                         f"missing outputs {r['missing_outputs']}, failed {r['failed']}: "
                         f"{'nothing lost, nothing scored twice' if r['ok'] else 'MISMATCH'}")
    for n, row in results["rows"].items():
        for side, r in row.items():
            if "azurite_profile" in r:
                prof = r["azurite_profile"]
                lines.append(f"Azurite's CPU profile N={n} {side}: {prof['findOne_pct']} % of its busy time in "
                             f"LokiJS's Collection.findOne, which reads every blob of the account (writes "
                             f"{prof['createBlob_pct']} %, reads {prof['getBlob_pct']} %): {prof['summary']}")
    lines.append("upload rate (the seed, 16 threads): " + ", ".join(f"N={k}: {v}/s"
                                                                   for k, v in results["upload_rate"].items()))
    return "\n".join(lines + closing_lines(results, 44, 14, 12))


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    after = {int(n): r.get("after") for n, r in results["rows"].items() if r.get("after")}
    if after:
        worst = max(r["idle_host_cpu_pct"] for r in after.values())
        out.append({"name": "idle host CPU, any N (after)", "value": worst, "display": f"{worst:.1f} %",
                    "target": f"<= {GOAL_IDLE_CPU:g} %", "result": "met" if worst <= GOAL_IDLE_CPU else "MISSED"})
        top = max(after)
        p50 = after[top]["latency_p50_s"]
        out.append({"name": f"one new blob p50 at N={top} (after; goal at 20000)", "value": p50,
                    "display": f"{p50:.3f} s", "target": f"<= {GOAL_P50_S:g} s",
                    "result": "met" if p50 <= GOAL_P50_S else "MISSED"})
        if 5000 in after:
            d = after[5000]["drain_rate"]
            out.append({"name": "drain at N=5000 (after)", "value": d, "display": f"{d:.0f}/s",
                        "target": f">= {GOAL_DRAIN:g}/s", "result": "met" if d >= GOAL_DRAIN else "MISSED"})
        rates = sorted((n, r["drain_rate"]) for n, r in after.items() if r["drain_complete"])
        if len(rates) >= 2:
            (n0, r0), (n1, r1) = rates[0], rates[-1]
            out.append({"name": f"drain linear in N (after: rate at {n1} / at {n0})", "value": r1 / r0,
                        "display": f"{r1 / r0:.2f}", "target": ">= 0.8",
                        "result": "met" if r1 / r0 >= 0.8 else "MISSED"})
        clean = all(r["ok"] for row in results["rows"].values() for r in row.values())
        out.append({"name": "nothing lost, nothing scored twice (both sides)", "value": clean,
                    "display": "yes" if clean else "NO", "target": "yes", "result": "met" if clean else "MISSED"})
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000,5000,20000", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--sides", default="before,after", type=lambda s: s.split(","))
    p.add_argument("--before", default="HEAD", help="the git revision whose blobs.py is BEFORE")
    p.add_argument("--idle", type=float, default=15.0, help="seconds of the idle CPU window")
    p.add_argument("--settle", type=float, default=6.0, help="seconds after the drain before the idle window")
    p.add_argument("--latency-runs", type=int, default=5)
    p.add_argument("--gap", type=float, default=4.0, help="idle seconds before each latency blob")
    p.add_argument("--latency-timeout", type=float, default=120.0)
    p.add_argument("--drain-timeout", type=float, default=240.0)
    p.add_argument("--azurite-profile", type=Path, metavar="DIR",
                   help="run each side's Azurite under node --cpu-prof and sum where its time went into DIR")
    p.add_argument("--keep", action="store_true", help="keep the work folder (the hosts' logs)")
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work, children = start_run("blob-bench-")
    results: dict[str, Any] = {"rows": {}, "upload_rate": {}, "goals": [], "notes": [], "unmeasured": [],
                               "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), "sizes": args.sizes}
    code = 0
    try:
        run(args, work, children, results)
    except KeyboardInterrupt:
        results["unmeasured"].append("interrupted")
        code = 130
    except Exception as e:  # noqa: BLE001 - reported, the table still printed
        traceback.print_exc()
        results["unmeasured"].append(f"{type(e).__name__}: {e}")
    finally:
        children.stop_all()
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["notes"].append(f"load average before {results['load']}, after {results['load_after']} (2 cores)")
    results["goals"] = goals(results)
    publish(results, render_text(results, args), args.json)
    return code or (1 if results["unmeasured"] else 0)


if __name__ == "__main__":
    sys.exit(main())
