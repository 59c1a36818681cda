"""The Azure CLI (``azure-cli`` from PyPI, in its own venv) as a child process for the tests: one command after
another in one process (support/azcli_session.py: the CLI's own ``get_default_cli().invoke``, a fresh CLI per
command), or, where the CLI's Python is not known, ``az`` started per command."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support.core import stop_process

SESSION = Path(__file__).resolve().parent / "azcli_session.py"


@dataclass
class Outcome:
    exit: int
    stdout: str
    stderr: str


def python_of(az: str) -> str | None:
    """The Python the ``az`` of a pip install (``<venv>/bin/az``, a script of that venv) runs with, or None."""
    candidate = Path(az).parent / "python"
    return str(candidate) if candidate.exists() and (Path(az).parent / "activate").exists() else None


class AzCli:
    """``az`` with a fixed environment: ``cli(args, timeout) -> Outcome``; :meth:`close` ends the session."""

    def __init__(self, az: str, env: dict[str, str]) -> None:
        self.az, self.env = az, {**env, "AZ_INSTALLER": env.get("AZ_INSTALLER", "PIP")}
        self.python = python_of(az)
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen([str(self.python), str(SESSION)], env=self.env, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return self.process

    def __call__(self, args: list[str], timeout: float) -> Outcome:
        if self.python is None:  # per command, as a person runs it
            proc = subprocess.run([self.az, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
            return Outcome(proc.returncode, proc.stdout, proc.stderr)
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write((json.dumps(args) + "\n").encode())
        process.stdin.flush()
        line = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.close()
                    raise subprocess.TimeoutExpired(["az", *args], timeout)
                chunk = os.read(process.stdout.fileno(), 1 << 16)
                if not chunk:
                    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                    self.close()
                    raise AssertionError(f"the az session ended during `az {' '.join(args[:2])}`:\n{err[-3000:]}")
                line += chunk
        answer = json.loads(line)
        return Outcome(answer["exit"], answer["stdout"], answer["stderr"])

    def close(self) -> None:
        if self.process is not None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:  # at the end of its input the session ends by itself
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop_process(self.process, signal.SIGTERM, 10)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
            self.process = None
