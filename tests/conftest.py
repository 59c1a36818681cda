"""Shared fixtures: example repos to copy, the real Azurite emulator, and `modelfunc serve` as a process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from modelfunc.azurite import Azurite

# Every secret the suite creates is looked for in every output, log and summary (tests/secrets_guard.py).
pytest_plugins = ["secrets_guard"]

# `modelfunc up` (and the action's up step) builds and self-tests the image when a Docker engine answers. Whether
# one answers during a test depends on which test started dockerd first, and the default base image cannot be
# pulled here: so `up` builds no image in the suite unless a test asks for one (--image on, with the local base).
os.environ["MODELFUNC_UP_IMAGE"] = "off"

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def copy_example(name: str, parent: Path) -> Path:
    """Copy an example model repo into ``parent`` (so a test may change it) and return its path."""
    dst = parent / name
    n = 1
    while dst.exists():
        n += 1
        dst = parent / f"{name}-{n}"
    shutil.copytree(EXAMPLES / name, dst, ignore=shutil.ignore_patterns("build", "__pycache__"))
    return dst


@pytest.fixture
def example(tmp_path: Path):  # noqa: ANN201
    """``example("diabetes-blob")``: a private copy of an example repo."""
    return lambda name: copy_example(name, tmp_path)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite blob service for the whole session (installed by `make setup`)."""
    with Azurite() as emulator:
        yield emulator


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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def run_modelfunc(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                  cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process (as a user would) and capture its output."""
    return subprocess.run([sys.executable, "-m", "modelfunc", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


class Hosts:
    """Starts `modelfunc serve PATH` child processes (as a user would) and stops them all at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.hosts: list[Host] = []

    def start(self, path: Path, *, connection_string: str | None = None, extra: tuple[str, ...] = (),
              expect_ready: bool = True, timeout: float = 60) -> Host:
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
        for host in self.hosts:
            host.stop()


@pytest.fixture
def serve(tmp_path: Path):  # noqa: ANN201
    """``serve(repo_or_app_dir, connection_string=...)`` → a running Host, stopped after the test."""
    hosts = Hosts(tmp_path)
    yield hosts.start
    hosts.stop_all()
