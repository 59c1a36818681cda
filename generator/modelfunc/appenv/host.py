"""The app on this machine: its lock and its Python (:func:`for_app`), and the local host started in it
(:func:`host_command`, :func:`run_host`)."""

from __future__ import annotations

import hashlib
import os
import site
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from ..errors import EnvironmentSpecError, NoWheel
from ..hostboot import BOOT, HOST_PATH_ENV
from .lock import LOCK_NAME, Lock, read_lock, write_lock
from .pip import Progress, quiet
from .resolve import resolve
from .trees import AppEnv, local_env, unlocked_env


def host_paths() -> list[str]:
    """modelfunc's own import paths (its package and its dependencies), for the local host's code only."""
    import modelfunc

    paths = [str(Path(modelfunc.__file__).resolve().parent.parent), *site.getsitepackages()]
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        paths.append(site.getusersitepackages())
    return list(dict.fromkeys(p for p in paths if os.path.isdir(p)))


def host_command(env: AppEnv, args: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The command and the environment variables that start the local host (``modelfunc.localhost``) with
    ``env``'s Python."""
    return [str(env.python), "-c", BOOT, *args], {HOST_PATH_ENV: os.pathsep.join(host_paths())}


def for_app(app_dir: Path, *, python_version: str | None = None, cache_dir: Path | None = None,
            refresh: bool = False, progress: Progress = quiet, source: Path | None = None
            ) -> tuple[Lock | None, AppEnv]:
    """The app's lock (its ``requirements.lock`` when that was made from its current requirements.txt, else
    resolved now and written there) and its Python on this machine. ``python_version``: the app's (default: the
    lock's, else this machine's)."""
    requirements = app_dir / "requirements.txt"
    lockfile = app_dir / LOCK_NAME
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest() if requirements.is_file() else None
    lock = None
    if lockfile.is_file() and not refresh:
        lock = read_lock(lockfile)
        if (digest and lock.source_digest != digest) or (python_version and lock.python_version != python_version):
            progress(f"dependencies: {lockfile} was made from other requirements or another Python: locking again")
            lock = None
    if lock is None:
        if digest is None:
            raise EnvironmentSpecError("has no requirements.txt to make the app's environment from", file=app_dir,
                                       hint="point at a model repo, or at the app `modelfunc package` wrote")
        here = f"{sys.version_info[0]}.{sys.version_info[1]}"
        try:
            lock = resolve(requirements, python_version=python_version or here, cache_dir=cache_dir,
                           refresh=refresh, progress=progress, source=source)
        except NoWheel as e:
            progress(f"WARNING: {e.message}; the app runs locally from its requirements installed for this "
                     "machine, without a lock")
            return None, unlocked_env(requirements, cache_dir=cache_dir, progress=progress)
        write_lock(lock, app_dir)
    return lock, local_env(lock, cache_dir=cache_dir, progress=progress, file=lockfile, requirements=requirements)


def run_host(env: AppEnv, args: list[str], *, extra_env: dict[str, str] | None = None) -> int:
    """Run the local host with the app's Python until it exits; SIGINT, SIGTERM and SIGHUP reach it once (it
    runs in a process group of its own, so a terminal's Ctrl+C is passed on, not delivered twice). Returns its
    exit code."""
    import signal

    from ..azurite import die_with_parent

    cmd, host_env = host_command(env, args)
    deathsig = die_with_parent()

    def preexec() -> None:
        os.setpgid(0, 0)
        if deathsig is not None:
            deathsig()

    proc = subprocess.Popen(cmd, env={**os.environ, **(extra_env or {}), **host_env}, stdin=subprocess.DEVNULL,
                            preexec_fn=preexec)

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code
