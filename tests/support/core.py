"""What tests of every folder use: the repository's paths, example repos to copy, the real CLI in a child process,
and `modelfunc serve` as a process (Hosts). The fixtures built on them are in support/plugin.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"


def stop_process(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
    """Ask a child process to end (``sig``), kill it after ``timeout`` s; its exit status (None: there was none)."""
    if process is None or process.poll() is not None:
        return process and process.returncode
    process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()  # it did not end when asked
        return process.wait()


def copy_example(name: str, parent: Path) -> Path:
    """Copy an example model repo into ``parent`` (so a test may change it) and return its path."""
    dst = parent / name
    n = 1
    while dst.exists():
        n += 1
        dst = parent / f"{name}-{n}"
    shutil.copytree(EXAMPLES / name, dst, ignore=shutil.ignore_patterns("build", "__pycache__"))
    return dst




@dataclass
class Host:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def status(self) -> dict:
        return httpx.get(f"{self.url}/admin/host/status", timeout=5).json()

    def stop(self) -> int:
        return stop_process(self.process, signal.SIGINT, 30)


def run_modelfunc(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                  cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process (as a user would) and capture its output."""
    return subprocess.run([sys.executable, "-m", "modelfunc", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


# What `serve` may take before it listens: packaging and, the first time on a machine, the download of the entry
# script's packages into the dependency cache (a minute or more on a cold machine with other tests running).
START_BUDGET = 180.0


class Hosts:
    """Starts `modelfunc serve PATH` child processes (as a user would) and stops them all at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.hosts: list[Host] = []

    def start(self, path: Path, *, connection_string: str | None = None, extra: tuple[str, ...] = (),
              expect_ready: bool = True, timeout: float = START_BUDGET) -> Host:
        n = len(self.hosts)
        ready, log = self.workdir / f"ready-{n}.json", self.workdir / f"host-{n}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("MODELFUNC_CONNECTION_STRING", None)
        args = ["--port", "0", "--ready-file", str(ready), "--poll-interval", "0.1", *extra]
        if connection_string:
            env["MODELFUNC_CONNECTION_STRING"] = connection_string  # as users should: not on the command line
        elif "--azurite" not in extra:
            args.append("--no-azurite")
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "modelfunc", "serve", str(path), *args],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        host = Host("", proc, log)
        self.hosts.append(host)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                if expect_ready:
                    raise AssertionError(f"host exited with {proc.returncode}:\n{host.output()}")
                return host
            if time.monotonic() > deadline:
                raise AssertionError(f"host not ready in {timeout}s:\n{host.output()}")
            time.sleep(0.05)
        host.url = json.loads(ready.read_text())["url"]
        return host

    def stop_all(self) -> None:
        """Ask every host to stop at once, then wait for each (a host takes about 2 s to stop)."""
        asked = [host.process for host in self.hosts if host.process.poll() is None]
        for process in asked:
            process.send_signal(signal.SIGINT)  # once: a second Ctrl-C would mean "force" to uvicorn
        for process in asked:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()  # it did not end when asked
                process.wait()


@contextlib.contextmanager
def hosts_side_by_side(workdir: Path, repos: dict[str, Path],
                       extra: dict[str, tuple[str, ...]] | None = None) -> Iterator[dict[str, Host]]:
    """`modelfunc serve` of each repo (``extra``: more arguments by name), all started at once, each by a Hosts of
    its own in a folder of its own, and all stopped on leaving. Each start may take as long as they would one after
    the other (Hosts.start's default each): they share the machine."""
    pools = {}
    for name in repos:
        (workdir / f"host-{name}").mkdir()
        pools[name] = Hosts(workdir / f"host-{name}")
    try:
        with ThreadPoolExecutor(max_workers=len(repos)) as threads:
            starting = {name: threads.submit(pools[name].start, repo, extra=(extra or {}).get(name, ()),
                                             timeout=START_BUDGET * len(repos)) for name, repo in repos.items()}
            started = {name: future.result() for name, future in starting.items()}
        yield started
    finally:
        for pool in pools.values():
            pool.stop_all()
