"""A real redis-server on a free 127.0.0.1 port for the cache tests (Debian's redis-server; `make setup`
installs it). No persistence; optionally a password and a TLS port with a self-signed certificate."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from support.core import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA): (cert.pem, key.pem)."""
    cert, key = workdir / "redis-cert.pem", workdir / "redis-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return cert, key


class RedisServer:
    """``redis-server`` as a child process; ``stop()``/``start()`` again keep the same port (a restart)."""

    def __init__(self, workdir: Path, *, password: str | None = None, tls: bool = False) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server; `make setup` does it)")
        self.exe = exe
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_certificate(workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"redis-{self.port}.log"

    def url(self, *, password: str | None = None) -> str:
        password = self.password if password is None else password
        return f"redis://:{password}@127.0.0.1:{self.port}/0" if password else f"redis://127.0.0.1:{self.port}/0"

    def azure_style(self) -> str:
        """The form the Azure portal shows for Azure Cache for Redis: host:port,password=...,ssl=True."""
        assert self.tls_port is not None
        return f"127.0.0.1:{self.tls_port},password={self.password},ssl=True,abortConnect=False"

    def start(self) -> RedisServer:
        cmd = [self.exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir), "--daemonize", "no"]
        if self.password:
            cmd += ["--requirepass", self.password]
        if self.tls_port:
            cmd += ["--tls-port", str(self.tls_port), "--tls-cert-file", str(self.cert), "--tls-key-file",
                    str(self.key), "--tls-ca-cert-file", str(self.cert), "--tls-auth-clients", "no"]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: "
                                   f"{self.log.read_text()[-800:]}")
            try:
                self.client().ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within 20 s: {self.log.read_text()[-800:]}")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung / very slow Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        stop_process(self.process, signal.SIGTERM, 20)
