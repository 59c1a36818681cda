"""The local default target: package, start Azurite and the local host, round-trip the sample.

Shared by `modelfunc up` and the action's up step, so both run exactly the same pipeline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from . import CONNECTION_ENV
from .appgen import PackageResult, render
from .blobtest import TestReport, round_trip
from .config import Project
from .errors import EnvironmentSpecError, HostError

Progress = Callable[[str], None]
Output = Callable[[str], object]


def _relay(proc: subprocess.Popen[str], output: Output) -> threading.Thread:
    """Pass a child's output on to ``output`` line by line (in Actions: printed so no line acts as a command)."""
    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output(line.rstrip("\n"))

    thread = threading.Thread(target=pump, name="modelfunc-relay", daemon=True)
    thread.start()
    return thread


def _child_output(output: Output | None) -> dict[str, object]:
    """Popen arguments: a child's output goes to our stderr as it is, or through a pipe to ``output``."""
    if output is None:
        return {"stdout": sys.stderr}
    return {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "errors": "replace", "bufsize": 1}


@contextlib.contextmanager
def local_host(app_dir: Path, connection_string: str | None, *, timeout: float,
               output: Output | None = None) -> Iterator[str]:
    """Run `modelfunc serve` for app_dir in a child process; yield its base URL once it is Running.

    The host's banner and log are progress, not the result: they go to stderr, or line by line to ``output``.
    """
    with tempfile.TemporaryDirectory(prefix="modelfunc-up-") as tmp:
        ready = Path(tmp) / "ready.json"
        env = dict(os.environ)
        if connection_string:
            env[CONNECTION_ENV] = connection_string  # through the environment: never on a command line
        cmd = [sys.executable, "-m", "modelfunc", "serve", str(app_dir), "--port", "0", "--no-azurite",
               "--ready-file", str(ready)]
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, **_child_output(output))
        relay = _relay(proc, output) if output is not None else None
        try:
            deadline = time.monotonic() + timeout
            while not ready.exists():
                if proc.poll() is not None:
                    raise HostError(f"the local host exited with code {proc.returncode} before it was ready "
                                    "(its error is above)")
                if time.monotonic() > deadline:
                    raise HostError(f"the local host was not ready within {timeout:.0f} s")
                time.sleep(0.05)
            yield json.loads(ready.read_text())["url"]
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if relay is not None:
                relay.join(timeout=5)


def install_requirements(project: Project, app_dir: Path, *, output: Output | None = None) -> None:
    """pip-install the app's requirements into this Python: the local host runs score.py here."""
    requirements = app_dir / "requirements.txt"
    pip = subprocess.Popen([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-r",
                            str(requirements)], stdin=subprocess.DEVNULL, **_child_output(output))
    if output is not None:
        _relay(pip, output).join()
    pip.wait()
    if pip.returncode:
        raise EnvironmentSpecError(f"pip could not install the app's requirements (exit {pip.returncode}); "
                                   "its output is above", file=project.environment_file,
                                   hint=f"they were generated into {requirements}")


def up(project: Project, out: Path | None = None, *, timeout: float = 60.0, run_test: bool = True,
       install: bool = False, connection_string: str | None = None, progress: Progress = lambda _: None,
       output: Output | None = None) -> tuple[PackageResult, TestReport | None]:
    """Package, then (unless ``run_test`` is false) run the app on the local host and test the sample.

    A blob trigger listens to ``connection_string``'s storage account, or to an Azurite started for the run.
    ``output`` receives the lines pip and the host print (default: they go straight to stderr).
    """
    progress(f"==> package {project.name}")
    result = render(project, out, progress=progress)
    progress(f"    {result.app_dir} ({project.trigger.type} trigger, run() style {result.entry_style})")
    if install:
        progress("==> install the app's requirements")
        install_requirements(project, result.app_dir, output=output)
    if not run_test:
        return result, None
    with contextlib.ExitStack() as stack:
        conn = None
        if project.trigger.type == "blob" and connection_string:
            conn = connection_string
        elif project.trigger.type == "blob":
            from .azurite import Azurite

            progress("==> start Azurite")
            conn = stack.enter_context(Azurite()).connection_string
        progress("==> start the local host")
        base_url = stack.enter_context(local_host(result.app_dir, conn, timeout=timeout, output=output))
        progress(f"    {base_url}")
        progress("==> test the sample")
        report = round_trip(project, connection_string=conn, host_url=base_url, timeout=timeout, progress=progress)
    return result, report
