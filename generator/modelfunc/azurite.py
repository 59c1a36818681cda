"""The embedded local default for storage: an Azurite blob service (and, beside it, its queue service) on free
loopback ports.

Azurite is the real Azure Storage emulator (npm package ``azurite``); ``make setup`` installs it into
``node_modules/`` of a modelfunc checkout. Set ``MODELFUNC_AZURITE`` to another ``azurite-blob``
executable to use that one instead (its ``azurite-queue`` sibling, when there is one, serves the queues: the local
host moves a blob that keeps failing to the ``webjobs-blobtrigger-poison`` queue, as the Functions host does).

Started from the main thread, each emulator process is tied to this one (Linux: ``PR_SET_PDEATHSIG``): it
stops when this process dies, whatever killed it, so no signal leaves an emulator behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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


def find_executable() -> str:
    explicit = os.environ.get("MODELFUNC_AZURITE")
    if explicit:
        return explicit
    here = Path(__file__).resolve()
    for base in [Path.cwd(), *Path.cwd().parents, *here.parents]:
        candidate = base / "node_modules" / ".bin" / "azurite-blob"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("azurite-blob")
    if found:
        return found
    raise HostError(
        "Azurite (the Azure Storage emulator) was not found",
        hint="run `make setup` in the modelfunc checkout (npm install azurite), install it with "
        "`npm install -g azurite`, or pass --connection-string for an existing storage account",
    )


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
        self._log = open(self.location / "azurite.log", "wb")  # noqa: SIM115 - closed in stop()
        cmd = [exe, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(self.location),
               "--skipApiVersionCheck", "--loose", "--silent"]
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
                         str(self.location), "--skipApiVersionCheck", "--loose", "--silent"]
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
