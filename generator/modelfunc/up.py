"""The local default target: package, start Azurite and the local host, round-trip the sample.

Shared by `modelfunc up` and the action's up step, so both run exactly the same pipeline.

Whatever ``up`` starts is stopped whatever stops it: SIGTERM, SIGHUP and SIGINT unwind the pipeline like Ctrl+C
(the local host is asked to stop, then Azurite), and each child is also tied to this process (Linux
``PR_SET_PDEATHSIG``), so even a SIGKILL of ``up`` leaves no host and no emulator running. What the children print
is passed on through the secret redactor.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import AZURITE_LOG_ENV, CONNECTION_ENV, appenv
from .appgen import PackageResult, render
from .azurite import die_with_parent
from .config import Project
from .errors import EnvironmentSpecError, HostError
from .golden import DIRECT, IMAGE, LOCAL_HOST, SLOT, Answer, Golden, for_project, from_report, from_selftest, with_image
from .progress import Progress, quiet
from .redact import redact
from .roundtrip import TestReport, round_trip

UP_IMAGE_ENV = "MODELFUNC_UP_IMAGE"  # the default of `up --image` (and the action's build-image): auto, on, off
Output = Callable[[str], object]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """A stop signal reached ``up`` (SIGTERM, SIGHUP or SIGINT): raised so that everything it started is stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, SIGTERM, SIGHUP and SIGINT raise :class:`Interrupted` (a KeyboardInterrupt, as Ctrl+C does), so
    every ``with`` around what was started unwinds and stops it. A further signal while that happens is ignored, so
    the clean-up is never cut short. The previous handlers come back on the way out. Off the main thread (where
    Python delivers no signal) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if stopping:
            return  # already stopping: let the clean-up finish
        stopping.append(signum)
        raise Interrupted(signum)

    previous = {}
    for sig in STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _relay(proc: subprocess.Popen[str], output: Output) -> threading.Thread:
    """Pass a child's output on to ``output`` line by line, redacted (in Actions: printed so no line acts as a
    command)."""
    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output(redact(line.rstrip("\n")))

    thread = threading.Thread(target=pump, name="modelfunc-relay", daemon=True)
    thread.start()
    return thread


def _child_output(output: Output | None) -> dict[str, object]:
    """Popen arguments: a child's output comes through a pipe, to be relayed (redacted) to ``output``."""
    return {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "errors": "replace", "bufsize": 1}


def _stop(proc: subprocess.Popen[Any], how: int = signal.SIGINT, timeout: float = 30) -> None:
    """Stop a child: ``how`` (a graceful stop), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(how)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def local_host(app_dir: Path, connection_string: str | None, *, timeout: float,
               output: Output | None = None, seen: dict[str, Any] | None = None,
               storage_log: Path | None = None) -> Iterator[str]:
    """Run `modelfunc serve` for app_dir in a child process; yield its base URL once it is Running. The versions
    the host's process imported for the app's lock go into ``seen``.

    The host's banner and log are progress, not the result: they go line by line (redacted) to ``output``, by
    default stderr. The host is stopped on the way out — by SIGINT, as Ctrl+C would, whatever ended the block — and
    dies with this process should that be killed outright. ``storage_log``: the access log of the Azurite
    ``connection_string`` points to, when this process started it (its blob trigger reads the writes there).
    """
    with tempfile.TemporaryDirectory(prefix="modelfunc-up-") as tmp:
        ready = Path(tmp) / "ready.json"
        env = dict(os.environ)
        env.pop(AZURITE_LOG_ENV, None)  # a log only of the Azurite this run started, never one left in the environment
        if connection_string:
            env[CONNECTION_ENV] = connection_string  # through the environment: never on a command line
            if storage_log is not None:
                env[AZURITE_LOG_ENV] = str(storage_log)
        cmd = [sys.executable, "-m", "modelfunc", "serve", str(app_dir), "--port", "0", "--no-azurite",
               "--ready-file", str(ready)]
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(),
                                **_child_output(output))
        relay = _relay(proc, output or _to_stderr)
        try:
            deadline = time.monotonic() + timeout
            while not ready.exists():
                if proc.poll() is not None:
                    raise HostError(f"the local host exited with code {proc.returncode} before it was ready "
                                    "(its error is above)")
                if time.monotonic() > deadline:
                    raise HostError(f"the local host was not ready within {timeout:.0f} s")
                time.sleep(0.05)
            state = json.loads(ready.read_text())
            if seen is not None:
                seen["local host"] = state.get("environment")
            yield state["url"]
        finally:
            _stop(proc)
            relay.join(timeout=5)


@dataclass
class UpResult:
    """What ``up`` did: the app, the image when one was built, the round trip, and the golden table."""

    package: PackageResult
    report: TestReport | None
    golden: Golden
    image: Any = None  # image.Packaged, when the image was built and self-tested
    lock: Any = None  # appenv.Lock: what the app runs, everywhere
    environment: dict[str, dict[str, str | None] | None] = field(default_factory=dict)  # where → versions imported
    locked_here: bool = True  # the local run used the lock's versions (appenv.AppEnv.locked)

    def check_environment(self) -> str:
        """Every place the app ran imported exactly the locked versions (compared, not assumed): a line saying
        so, or EnvironmentSpecError naming each difference."""
        if self.lock is None:
            return "environment: no lock (a requirement has no wheel for the image): versions not compared"
        seen = {w: v for w, v in self.environment.items() if w == "image" or self.locked_here}
        problems = appenv.compare(self.lock, seen)
        if problems:
            raise EnvironmentSpecError("the app did not run the locked versions everywhere:\n  "
                                       + "\n  ".join(problems),
                                       file=self.package.app_dir / appenv.LOCK_NAME,
                                       hint="--refresh-dependencies makes the lock and the environments again")
        places = ", ".join(w for w, v in seen.items() if v is not None) or "no place that ran the app"
        line = f"environment: {len(self.lock.packages)} locked packages, the same versions in {places}"
        if not self.locked_here:
            line += " (the local run used its requirements resolved for this machine's Python: not compared)"
        return line


def direct_answer(project: Project, app_dir: Path, *, timeout: float, output: Output | None = None,
                  python: Path | str | None = None, seen: dict[str, Any] | None = None) -> Answer:
    """The sample scored by run() called directly, with the app's Python (``python``: appenv.local_env's): the
    app's runtime self-test in a child process (init(), then run() through the entry-script contract alone: no
    host, no transport, no cache). The versions it imported go into ``seen``."""
    from .runtime.modelfunc_runtime import SELFTEST_MARK

    where = "the app's Python" if python else f"this Python ({sys.version.split()[0]})"
    cmd = [str(python or sys.executable), "-m", "modelfunc_runtime", "selftest", str(project.sample_input.resolve()),
           project.trigger.function_name]
    try:
        proc = subprocess.run(cmd, cwd=app_dir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return Answer(where=where, error=f"no answer within {timeout:.0f} s")
    marks = [ln for ln in proc.stdout.splitlines() if ln.startswith(SELFTEST_MARK)]
    result = json.loads(marks[-1][len(SELFTEST_MARK):]) if marks else {}
    if not result.get("direct") and output is not None:
        for line in (proc.stderr or "").splitlines()[-40:]:
            output(redact(line))
    if not marks:
        return Answer(where=where, error=f"the self-test exited with code {proc.returncode} without a result "
                                         "(its output is above)")
    if seen is not None:
        seen["run() directly"] = result.get("environment")
    return from_selftest(result, "direct", where)


def _image_mode(image: str, progress: Progress) -> str | None:
    """Why no image is built (None: build and self-test it): ``on``, ``off``, or ``auto`` (when a Docker engine
    answers)."""
    if image != "auto":
        return None if image == "on" else "no image built (--image off)"
    from .errors import ModelfuncError
    from .image import engine

    try:
        engine(timeout=10)
    except ModelfuncError as e:
        progress(f"    (no image built: {e.message})")
        return "no image built: no Docker engine answered (--image auto)"
    return None


def up(project: Project, out: Path | None = None, *, timeout: float = 60.0, run_test: bool = True,
       refresh: bool = False, connection_string: str | None = None, progress: Progress = quiet,
       output: Output | None = None, image: str = "off", base_image: str | None = None) -> UpResult:
    """See :func:`_up`; SIGTERM, SIGHUP or SIGINT meanwhile raise :class:`Interrupted` once everything it started
    (the local host, Azurite) has been stopped."""
    with stop_on_signals():
        return _up(project, out, timeout=timeout, run_test=run_test, refresh=refresh,
                   connection_string=connection_string, progress=progress, output=output, image=image,
                   base_image=base_image)


def _up(project: Project, out: Path | None = None, *, timeout: float = 60.0, run_test: bool = True,
        refresh: bool = False, connection_string: str | None = None, progress: Progress = quiet,
        output: Output | None = None, image: str = "off", base_image: str | None = None) -> UpResult:
    """Package (and, with ``image`` on or auto, build and self-test the image), then (unless ``run_test`` is
    false) score the sample with run() called directly, run the app on the local host, round-trip the sample and
    put the answers side by side: they must agree (byte for byte, or within the sample's tolerance).

    A blob trigger listens to ``connection_string``'s storage account, or to an Azurite started for the run.
    ``output`` receives the lines pip and the host print (default: they go straight to stderr).
    """
    golden = for_project(project)
    golden.set(SLOT, Answer(skipped="target local"))
    why_not = _image_mode(image, progress)
    packaged = None
    if why_not is None:
        from . import image as images

        progress(f"==> package {project.name} and build its image")
        try:
            packaged = images.package(project, out, base_image=base_image, refresh=refresh, progress=progress)
        except images.SelfTestFailed as e:
            packaged = e.packaged  # type: ignore[attr-defined]
        result = packaged.rendered
        with_image(golden, packaged, direct_too=False)
    else:
        progress(f"==> package {project.name}")
        result = render(project, out, progress=progress)
        golden.set(IMAGE, Answer(skipped=why_not))
    progress(f"    {result.app_dir} ({project.trigger.type} trigger, run() style {result.entry_style})")
    progress("==> the app's environment (its own Python, from its lock)")
    lock, env = appenv.for_app(result.app_dir, python_version=project.config.python_version,
                               refresh=refresh and packaged is None, progress=progress,
                               source=project.environment_file)
    progress(f"    {env.python}" + (" (the image's own packages)" if env.same_as_image else ""))
    seen: dict[str, Any] = {}
    if packaged is not None and packaged.test is not None:
        seen["image"] = packaged.test.result.get("environment")
    if not run_test:
        return UpResult(result, None, golden, packaged, lock, seen, env.locked)
    progress("==> score the sample with run() called directly")
    golden.set(DIRECT, direct_answer(project, result.app_dir, timeout=timeout, output=output, python=env.python,
                                     seen=seen))
    with contextlib.ExitStack() as stack:
        conn = None  # the storage account a trigger with one listens to: the one given, else Azurite
        storage_log = None
        if project.trigger.has_storage and connection_string:
            conn = connection_string
        elif project.trigger.has_storage:
            from .azurite import Azurite

            progress("==> start Azurite")
            emulator = stack.enter_context(Azurite())
            conn, storage_log = emulator.connection_string, emulator.access_log
        progress("==> start the local host")
        base_url = stack.enter_context(local_host(result.app_dir, conn, timeout=timeout, output=output, seen=seen,
                                                  storage_log=storage_log))
        progress(f"    {base_url}")
        progress("==> test the sample")
        report = round_trip(project, connection_string=conn, host_url=base_url, timeout=timeout, progress=progress)
    golden.set(LOCAL_HOST, from_report(report, base_url))
    return UpResult(result, report, golden, packaged, lock, seen, env.locked)
