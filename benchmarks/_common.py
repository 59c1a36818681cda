"""What the benchmarks share: their error for an unmeasurable figure, progress lines, child processes."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def tally_stacks(stacks: Iterable[tuple[list[str], int]]) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Samples per function from (stack, count) pairs, the stack root first: (self: the last frame's, inclusive: each
    function once per stack, however deep it recurses). The profiles' summaries (py-spy's, Node's) read these."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return own, inclusive


class Unmeasured(Exception):
    """A figure could not be measured (the run still goes on with the others)."""


def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # stop the children on `kill` too, like on Ctrl+C


def start_run(prefix: str) -> tuple[Path, Children]:
    """A work directory with logs/, and the run's children; SIGTERM then cleans up like Ctrl+C."""
    signal.signal(signal.SIGTERM, _sigterm)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    (work / "logs").mkdir()
    return work, Children(work / "logs")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def closing_lines(results: dict[str, Any], name_w: int, value_w: int, target_w: int) -> list[str]:
    """The goals table, then the notes and what could not be measured: the end of every report."""
    lines = ["", f"{'goal':{name_w}}{'measured':>{value_w}}{'target':>{target_w}}  result"]
    for g in results["goals"]:
        lines.append(f"{g['name']:{name_w}}{g['display']:>{value_w}}{g['target']:>{target_w}}  {g['result']}")
    if results["notes"]:
        lines.append("")
        lines.extend(f"note: {n}" for n in results["notes"])
    if results["unmeasured"]:
        lines.append("")
        lines.extend(f"NOT MEASURED: {u}" for u in results["unmeasured"])
    return lines


class Children:
    """Every child process of the benchmark, stopped at the end whatever happens."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes], Any]] = []
        self.stop_signals: dict[int, int] = {}

    def start(self, name: str, cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              stop_signal: int = signal.SIGINT) -> subprocess.Popen[bytes]:
        """Start ``cmd``; ``stop_signal`` asks it to shut down (SIGINT for servers, SIGTERM for daemons)."""
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        # A session of its own: a terminal Ctrl+C reaches only this script, which then stops the
        # children in order; the process group also takes gunicorn's workers down with its master.
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, log))
        self.stop_signals[proc.pid] = stop_signal
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + line for line in text[-lines:])

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        for i, (_name, p, log) in enumerate(self.procs):
            if p is proc:
                self._stop_one(p)
                log.close()
                del self.procs[i]
                return

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # its own session: the group id is its pid

    def _stop_one(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            self._signal(proc, self.stop_signals.get(proc.pid, signal.SIGINT))
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        self._signal(proc, signal.SIGKILL)  # anything of its group that outlived it (gunicorn workers)

    def stop_all(self) -> None:
        for _name, proc, log in reversed(self.procs):
            try:
                self._stop_one(proc)
            finally:
                log.close()
        self.procs.clear()


def publish(results: dict[str, Any], text: str, json_path: Path | None) -> None:
    """Print the rendered table; with ``--json``, also write the results there."""
    import json

    print()
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nwrote {json_path}")
