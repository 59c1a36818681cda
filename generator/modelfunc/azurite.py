"""The embedded local default for storage: an Azurite blob service (and, beside it, its queue service) on free
loopback ports.

Azurite is the real Azure Storage emulator (npm package ``azurite``). ``find_executable`` looks for its
``azurite-blob`` in this order:

1. ``MODELFUNC_AZURITE``: an ``azurite-blob`` executable chosen by the user;
2. ``node_modules/.bin/azurite-blob`` in the current directory or one of its parents, or in a parent of this
   module (a modelfunc checkout, where ``make setup`` ran ``npm ci``);
3. ``azurite-blob`` on ``PATH`` (``npm install -g azurite``);
4. the per-user cache, ``<cache_root>/azurite/<version>`` (``$XDG_CACHE_HOME/modelfunc`` or ``~/.cache/modelfunc``),
   where modelfunc installs the Azurite version pinned by its own ``package-lock.json`` (see ``node_project``)
   with ``npm ci`` the first time one is needed and neither of the above has one. That needs Node.js and npm on
   ``PATH``; without them the error names what to install.

The install happens only when an emulator is started (``Azurite.start``: the local run of a blob-trigger app), never
at import. It runs under an exclusive lock (concurrent runs wait for one install) in a temporary sibling directory
that is renamed into place once complete, so the cache never holds a half-installed Azurite.

The ``azurite-queue`` sibling of the ``azurite-blob`` found, when there is one, serves the queues: the local host
moves a blob that keeps failing to the ``webjobs-blobtrigger-poison`` queue, as the Functions host does.

Started from the main thread, each emulator process is tied to this one (Linux: ``PR_SET_PDEATHSIG``): it
stops when this process dies, whatever killed it, so no signal leaves an emulator behind.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import HostError

# The emulator's well-known development account (public, documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int, host: str = "127.0.0.1", queue_port: int | None = None) -> str:
    queue = f"QueueEndpoint=http://{host}:{queue_port}/{DEV_ACCOUNT};" if queue_port else ""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{DEV_ACCOUNT};{queue}"
    )


_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when this process dies (Linux ``PR_SET_PDEATHSIG``), so a
    child is never left running after its parent was killed — also by SIGKILL, which no handler sees.

    None where that cannot work: off Linux, and off the main thread (the kernel sends the signal when the *thread*
    that started the child ends, which for a worker thread may be long before the process does)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


_NODE_PROJECT_FILES = ("package.json", "package-lock.json")
_HOW_ELSE = "to use an existing storage account instead, pass --connection-string (or set MODELFUNC_CONNECTION_STRING)"


def node_project() -> Path:
    """The npm project that pins the Azurite modelfunc installs (``package.json`` + ``package-lock.json``):
    ``modelfunc/node/`` in an installed wheel (the build copies them there), the root of a modelfunc checkout."""
    here = Path(__file__).resolve()
    for candidate in (here.parent / "node", here.parents[2]):
        if all((candidate / name).is_file() for name in _NODE_PROJECT_FILES):
            return candidate
    raise HostError(f"modelfunc's pinned Azurite project (package.json and package-lock.json) is missing from "
                    f"{here.parent / 'node'}: this modelfunc installation is incomplete",
                    hint="reinstall modelfunc, or install Azurite yourself (`npm install -g azurite`) and run again; "
                    + _HOW_ELSE)


def azurite_version(project: Path | None = None) -> str:
    """The Azurite version ``package-lock.json`` pins."""
    lock = (project or node_project()) / "package-lock.json"
    try:
        version = json.loads(lock.read_text(encoding="utf-8"))["packages"]["node_modules/azurite"]["version"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HostError(f"cannot read the pinned Azurite version from {lock}: {e!r}") from None
    if not isinstance(version, str) or not version or "/" in version or version.startswith("."):
        raise HostError(f"{lock} pins no usable Azurite version: {version!r}")
    return version


def cache_dir(version: str) -> Path:
    """Where modelfunc installs Azurite ``version`` for this user."""
    from .appenv import cache_root  # late: only a run that needs Azurite (and has none) pays for it

    return cache_root() / "azurite" / version


def _checkout_candidates() -> list[Path]:
    """Where a checkout's ``npm ci`` puts ``azurite-blob``: under the current directory or one of its parents, or a
    parent of this module (tests replace this to look as if modelfunc were installed from a wheel)."""
    here = Path(__file__).resolve()
    cwd = Path.cwd()
    return [base / "node_modules" / ".bin" / "azurite-blob" for base in [cwd, *cwd.parents, *here.parents]]


def _blob_executable(root: Path) -> Path:
    return root / "node_modules" / ".bin" / "azurite-blob"


def find_executable() -> str:
    """The ``azurite-blob`` to run (the lookup order is in the module docstring); installs the pinned Azurite into
    the per-user cache when none is found."""
    explicit = os.environ.get("MODELFUNC_AZURITE")
    if explicit:
        return explicit
    for candidate in _checkout_candidates():
        if candidate.exists():
            return str(candidate)
    found = shutil.which("azurite-blob")
    if found:
        return found
    return str(ensure_installed())


def ensure_installed() -> Path:
    """The pinned Azurite's ``azurite-blob`` in the per-user cache, installed there with ``npm ci`` if missing."""
    project = node_project()
    version = azurite_version(project)
    target = cache_dir(version)
    executable = _blob_executable(target)
    if executable.exists():  # the directory appears complete (renamed into place) or not at all
        return executable
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise HostError(
            "Azurite (the Azure Storage emulator the local blob trigger runs on) needs Node.js and npm, "
            + ("which are not on PATH" if len(missing) > 1 else f"and {missing[0]} is not on PATH")
            + ": install Node.js 18 or newer (https://nodejs.org/ or your package manager, e.g. "
            f"`apt-get install nodejs npm`) and run again; modelfunc then installs Azurite {version} itself",
            hint=_HOW_ELSE,
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / ".lock", f"another modelfunc run installing Azurite {version}"):
        if executable.exists():
            return executable  # installed by the run this one waited for
        # Under the lock no one else installs: what is left of an earlier install was interrupted (SIGKILL).
        for stale in target.parent.glob(f".{version}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        _npm_install(project, version, target)
    return executable


@contextlib.contextmanager
def _exclusive(path: Path, holder: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (waits, saying so, while ``holder`` has it); no lock off POSIX."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"==> wait for {holder} ({path})", file=sys.stderr, flush=True)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _npm_install(project: Path, version: str, target: Path) -> None:
    """``npm ci`` the pinned project into a temporary sibling of ``target``, renamed to ``target`` once complete.
    npm's output goes to stderr; on any failure or interruption nothing is left behind."""
    print(f"==> install Azurite {version} (the Azure Storage emulator, pinned by modelfunc's package-lock.json) "
          f"into {target} with npm: first use only", file=sys.stderr, flush=True)
    npm = shutil.which("npm") or "npm"
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=target.parent))
    try:
        for name in _NODE_PROJECT_FILES:
            shutil.copyfile(project / name, tmp / name)
        tail: collections.deque[str] = collections.deque(maxlen=20)
        try:
            process = subprocess.Popen([npm, "ci", "--omit=dev", "--no-audit", "--no-fund"], cwd=tmp,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       preexec_fn=die_with_parent())
        except OSError as e:
            raise HostError(f"could not run npm ({npm}) to install Azurite {version}: {e}",
                            hint=f"install Azurite yourself (`npm install -g azurite@{version}`) and run again; "
                            + _HOW_ELSE) from None
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = raw.decode("utf-8", errors="replace")
                sys.stderr.write(line)
                sys.stderr.flush()
                if line.strip():
                    tail.append(line.rstrip())
            code = process.wait()
        finally:
            if process.poll() is None:  # interrupted: stop npm before its directory goes
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            process.stdout.close()
        if code != 0:
            output = "\n".join(f"    {line}" for line in tail) or "    (no output)"
            raise HostError(
                f"npm ci exited with code {code} while installing Azurite {version} into {target}; "
                f"the end of its output:\n{output}",
                hint="npm must reach its registry (check the network, a proxy, `npm config get registry`); or "
                f"install Azurite yourself with `npm install -g azurite@{version}` or set MODELFUNC_AZURITE to an "
                "azurite-blob executable; " + _HOW_ELSE,
            )
        if not _blob_executable(tmp).exists():
            raise HostError(f"npm ci succeeded but installed no azurite-blob in {tmp / 'node_modules' / '.bin'}",
                            hint=f"install Azurite yourself (`npm install -g azurite@{version}`) and run again")
        tmp.chmod(0o755)  # mkdtemp made it private; the installed tree is as readable as npm made its files
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    """Start/stop an Azurite blob service and, when installed, its queue service. Use as a context manager."""

    def __init__(self, *, port: int | None = None, location: str | Path | None = None,
                 startup_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self._own_location = location is None
        self.location = Path(location) if location else Path(tempfile.mkdtemp(prefix="modelfunc-azurite-"))
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.queue_port: int | None = None  # set once the queue service listens (None: blob service only)
        self.queue_process: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, queue_port=self.queue_port)

    @property
    def access_log(self) -> Path:
        """The blob service's access log (and the emulator's own messages): see localhost/accesslog.py."""
        return self.location / "azurite.log"

    def start(self) -> Azurite:
        """Start the emulator and wait until it listens; anything that stops the wait (a signal too) stops it."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Azurite:
        exe = find_executable()
        self.location.mkdir(parents=True, exist_ok=True)
        self._log = open(self.access_log, "wb")  # noqa: SIM115 - closed in stop()
        # Not --silent: the blob service's access log (a line per request, written once it is answered) goes to
        # azurite.log, where the local host's blob trigger reads the blobs written (``access_log``).
        # --disableTelemetry: an emulator modelfunc starts for its user sends nothing anywhere.
        cmd = [exe, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(self.location),
               "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
        try:
            self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=die_with_parent())
        except OSError as e:
            raise HostError(f"could not start Azurite ({exe}): {e}") from None
        queue_exe = Path(exe).with_name("azurite-queue")
        queue_port = free_port()
        if queue_exe.exists():
            queue_cmd = [str(queue_exe), "--queueHost", "127.0.0.1", "--queuePort", str(queue_port), "--location",
                         str(self.location), "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
            try:
                self.queue_process = subprocess.Popen(queue_cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                                      preexec_fn=die_with_parent())
            except OSError:
                self.queue_process = None  # the blob service is what the trigger needs; poison falls back to a log
        deadline = time.monotonic() + self.startup_timeout
        waiting = {"blob": (self.process, self.port)}
        if self.queue_process is not None:
            waiting["queue"] = (self.queue_process, queue_port)
        while time.monotonic() < deadline:
            for service, (process, port) in list(waiting.items()):
                if process.poll() is not None:
                    if service == "queue":  # optional: go on without it
                        del waiting[service]
                        self.queue_process = None
                        continue
                    self.stop()
                    raise HostError(f"Azurite exited with code {process.returncode} at start; "
                                    f"see {self.location / 'azurite.log'}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        del waiting[service]
                        if service == "queue":
                            self.queue_port = port
                except OSError:
                    pass
            if "blob" not in waiting and (not waiting or time.monotonic() > deadline - self.startup_timeout / 2):
                return self  # the queue service is given half the time at most: the blob trigger needs blobs
            time.sleep(0.1)
        self.stop()
        raise HostError(f"Azurite did not listen on 127.0.0.1:{self.port} within {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        for process in (self.queue_process, self.process):
            if process and process.poll() is None:
                process.terminate()
        for process in (self.queue_process, self.process):
            if process and process.poll() is None:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._log:
            self._log.close()
            self._log = None
        if self._own_location:
            shutil.rmtree(self.location, ignore_errors=True)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
