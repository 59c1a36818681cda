"""The embedded local default for storage: an Azurite blob service on a free loopback port.

Azurite is the real Azure Storage emulator (npm package ``azurite``); ``make setup`` installs it into
``node_modules/`` of a modelfunc checkout. Set ``MODELFUNC_AZURITE`` to another ``azurite-blob``
executable to use that one instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import HostError

# The emulator's well-known development account (public, documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{DEV_ACCOUNT};"
    )


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
    """Start/stop an Azurite blob service. Use as a context manager."""

    def __init__(self, *, port: int | None = None, location: str | Path | None = None,
                 startup_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self._own_location = location is None
        self.location = Path(location) if location else Path(tempfile.mkdtemp(prefix="modelfunc-azurite-"))
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def start(self) -> Azurite:
        exe = find_executable()
        self.location.mkdir(parents=True, exist_ok=True)
        self._log = open(self.location / "azurite.log", "wb")  # noqa: SIM115 - closed in stop()
        cmd = [exe, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(self.location),
               "--skipApiVersionCheck", "--loose", "--silent"]
        try:
            self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            raise HostError(f"could not start Azurite ({exe}): {e}") from None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise HostError(f"Azurite exited with code {self.process.returncode} at start; "
                                f"see {self.location / 'azurite.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise HostError(f"Azurite did not listen on 127.0.0.1:{self.port} within {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log:
            self._log.close()
            self._log = None
        if self._own_location:
            shutil.rmtree(self.location, ignore_errors=True)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
