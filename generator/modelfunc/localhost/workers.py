"""Several worker processes behind one port, as the Functions host runs FUNCTIONS_WORKER_PROCESS_COUNT Python workers
(and azmlinfsrv its gunicorn workers).

The supervisor (``modelfunc serve --workers N``, or the app setting) binds the port once and starts N copies of the
host, each inheriting the listening socket: the kernel hands each new connection to one of them. Each worker loads
the app and runs its ``init()`` once, in its own process. What must happen once happens in worker 0, the primary:
the blob listeners (so no blob is scored twice), the embedded Azurite, the admin API (``/admin/...``: the status,
the function list, the invocation of a non-HTTP function). The other workers pass an admin request on to the
primary over a private Unix socket, so every worker gives the same answers there; the status counts the HTTP
invocations of all of them (a small shared file of counters). The master key is chosen once, by the supervisor.

SIGINT, SIGTERM or SIGHUP to the supervisor stops every worker (gracefully, then by force after the grace period).
A worker that dies is reported on stderr and restarted; one that cannot stay up (five restarts in a minute) stops
the host. A worker that fails before the host was ever ready stops it at once, with its error.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import HostError
from ..hostboot import BOOT, HOST_PATH_ENV

WORKERS_SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
MAX_WORKERS = 10  # the Functions host's maximum for FUNCTIONS_WORKER_PROCESS_COUNT
GRACE_S = 35.0  # uvicorn's graceful shutdown (30 s) and a little more
RESTARTS_PER_MINUTE = 5
_SLOT = struct.Struct("<q")

def worker_count(given: int | None, settings: dict[str, str]) -> int:
    """``--workers`` when given, else the app setting FUNCTIONS_WORKER_PROCESS_COUNT, else 1."""
    if given is not None:
        if not 1 <= given <= MAX_WORKERS:
            raise HostError(f"--workers {given}: a number of worker processes from 1 to {MAX_WORKERS} (the Functions "
                            f"host's limit for {WORKERS_SETTING})", hint="e.g. --workers 2, one per CPU")
        return given
    raw = (settings.get(WORKERS_SETTING) or "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise HostError(f"app setting {WORKERS_SETTING}={raw!r} is not a number of worker processes from 1 to "
                        f"{MAX_WORKERS}", hint=f"e.g. {WORKERS_SETTING}=2, one per CPU")
    return int(raw)


@dataclass(frozen=True)
class WorkerRole:
    """What the supervisor tells a worker, on its stdin (the master key never goes on a command line)."""

    index: int
    count: int
    fd: int  # the listening socket, inherited
    admin_socket: str  # the primary's private admin socket
    counters: str  # the shared counters file
    master_key: str | None
    key_generated: bool

    @property
    def primary(self) -> bool:
        return self.index == 0

    def listening_socket(self) -> socket.socket:
        return socket.socket(fileno=self.fd)


def read_role() -> WorkerRole:
    line = sys.stdin.readline()
    try:
        return WorkerRole(**json.loads(line))
    except (ValueError, TypeError) as e:
        raise HostError(f"--worker: no role from the supervisor on stdin ({e})",
                        hint="--worker is for the host's own worker processes; use --workers N") from None


class Counters:
    """The HTTP invocations of each worker (one 8-byte slot each) and the supervisor's restart count (the last)."""

    def __init__(self, path: str, count: int) -> None:
        self.count = count
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), _SLOT.size * (count + 1))

    @staticmethod
    def create(path: str, count: int) -> None:
        with open(path, "wb") as f:
            f.write(bytes(_SLOT.size * (count + 1)))

    def set(self, index: int, value: int) -> None:
        _SLOT.pack_into(self._map, _SLOT.size * index, value)

    def get(self, index: int) -> int:
        return _SLOT.unpack_from(self._map, _SLOT.size * index)[0]

    def total(self) -> int:
        return sum(self.get(i) for i in range(self.count))

    def restarts(self) -> int:
        return self.get(self.count)


class AdminForward:
    """ASGI: an admin request to this worker, answered by the primary (over its private Unix socket)."""

    HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"date", b"server"})

    def __init__(self, path: str) -> None:
        self.path = path
        self._client: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import httpx

        if self._client is None:
            import logging

            logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per passed-on request
            self._client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.path), timeout=None)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in self.HOP]
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        try:
            resp = await self._client.request(scope["method"], "http://primary" + target.decode("latin-1"),
                                              headers=headers, content=bytes(body))
            status, out, content = resp.status_code, resp.headers.raw, resp.content
        except Exception as e:  # noqa: BLE001 - the primary is restarting, or not up yet
            status, content = 503, json.dumps({"message": f"the primary worker did not answer: {e}"}).encode()
            out = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k, v) for k, v in out if k.lower() not in self.HOP]})
        await send({"type": "http.response.body", "body": content})


def admin_socket(path: str) -> socket.socket:
    """The primary's private admin socket (in the supervisor's 0700 folder; a restarted primary binds it again)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    return sock


def _command(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The worker's command: this host's own, in the same Python, behind the same import finder."""
    from .isolation import FINDER

    env = dict(os.environ)
    if FINDER is None:
        return [sys.executable, "-m", "modelfunc.localhost", *argv], env
    env[HOST_PATH_ENV] = os.pathsep.join(FINDER.host_paths)
    return [sys.executable, "-c", BOOT, *argv], env  # as appenv starts the host


class Supervisor:
    """Start, watch and stop the workers (see the module docstring)."""

    def __init__(self, argv: list[str], count: int, sock: socket.socket, base_url: str, *,
                 ready_file: Path | None, master_key: str | None, key_generated: bool) -> None:
        self.argv, self.count, self.sock, self.base_url = argv, count, sock, base_url
        self.ready_file = ready_file
        self.master_key, self.key_generated = master_key, key_generated
        self.dir = Path(tempfile.mkdtemp(prefix="modelfunc-workers-"))  # 0700: the admin socket lives here
        self.counters_path = str(self.dir / "counters")
        Counters.create(self.counters_path, count)
        self.counters = Counters(self.counters_path, count)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.stopping = False
        self.restarts: list[float] = []

    def _ready_path(self, index: int) -> Path:
        return self.dir / f"ready-{index}.json"

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        from ..azurite import die_with_parent

        with contextlib.suppress(FileNotFoundError):
            self._ready_path(index).unlink()
        cmd, env = _command([*self.argv, "--worker", "--ready-file", str(self._ready_path(index))])
        deathsig = die_with_parent()

        def preexec() -> None:
            os.setpgid(0, 0)  # a terminal's Ctrl+C reaches the supervisor only, which stops the workers once
            if deathsig is not None:
                deathsig()

        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, pass_fds=(self.sock.fileno(),),
                                preexec_fn=preexec)
        role = WorkerRole(index, self.count, self.sock.fileno(), str(self.dir / "admin.sock"), self.counters_path,
                          self.master_key, self.key_generated)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(asdict(role)).encode() + b"\n")
        proc.stdin.close()
        self.procs[index] = proc
        return proc

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            return self._run()
        finally:
            self._stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.sock.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self) -> int:
        for i in range(self.count):  # all at once: until the primary is up, another's admin answer is a 503
            self._start(i)
        while not all(self._ready_path(i).exists() for i in range(self.count)):
            if self.stopping:
                return 0
            for i, proc in enumerate(self.procs):
                code = proc.poll()  # type: ignore[union-attr]
                if code is not None:
                    print(f"error: worker {i} exited with code {code} before it was ready: the host stops",
                          file=sys.stderr, flush=True)
                    return code or 1
            time.sleep(0.05)
        primary = json.loads(self._ready_path(0).read_text())
        pids = ", ".join(str(p.pid) for p in self.procs if p is not None)
        if self.ready_file:
            tmp = Path(f"{self.ready_file}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**primary, "url": self.base_url, "workers": self.count}))
            tmp.replace(self.ready_file)
        print(f"Host running at {self.base_url} (state {primary.get('state')}, {self.count} worker processes: "
              f"{pids}); Ctrl+C stops it", flush=True)
        while not self.stopping:
            for i, proc in enumerate(self.procs):
                code = proc.poll() if proc is not None else None
                if code is None or self.stopping:
                    continue
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < 60] + [now]
                if len(self.restarts) > RESTARTS_PER_MINUTE:
                    print(f"error: worker {i} (pid {proc.pid}) exited with code {code}; {len(self.restarts)} "  # type: ignore[union-attr]
                          "workers died within a minute: the host stops", file=sys.stderr, flush=True)
                    return 1
                new = self._start(i)
                self.counters.set(self.count, self.counters.restarts() + 1)
                print(f"warning: worker {i} (pid {proc.pid}) exited with code {code}; restarted as pid "  # type: ignore[union-attr]
                      f"{new.pid}", file=sys.stderr, flush=True)
            time.sleep(0.1)
        return 0

    def _stop_all(self) -> None:
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for proc in live:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
