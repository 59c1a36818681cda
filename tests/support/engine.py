"""Real parts for the image tests: a Docker engine, a local Python base image, an OCI registry.

Nothing can be pulled here, so the base image is built with debootstrap (Debian bookworm, Python 3.11)
and imported once; the engine keeps it between runs. dockerd runs with host networking only
(--bridge=none, no iptables), and containers the tests start use no network at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from support.core import run_modelfunc, stop_process

BASE_IMAGE = "modelfunc-local/python:3.11-bookworm"


def _ping() -> bool:
    import docker

    try:
        docker.from_env(timeout=5).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means no engine
        return False


class Engine:
    """Use the running Docker engine, or start dockerd (as root). One engine serves the whole run: pytest-xdist's
    workers share it, so the first to need it starts it under a lock in the run's shared temp dir and notes its pid
    there (``dockerd.pid``); :func:`stop_started_engine` stops it once, when the run ends."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    def start(self) -> str | None:
        """None when an engine answers; otherwise the reason there is none."""
        if _ping():
            return None
        dockerd = shutil.which("dockerd")
        if not dockerd:
            return "no Docker engine: dockerd is not installed (apt-get install docker.io)"
        if os.geteuid() != 0:
            return "no Docker engine running, and starting dockerd needs root"
        self.log = self.shared / "dockerd.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        (self.shared / "dockerd.pid").write_text(str(self.process.pid))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"dockerd exited with {self.process.returncode}: {self.log.read_text()[-500:]}"
            if _ping():
                return None
            time.sleep(0.5)
        stop_process(self.process, signal.SIGTERM, 30)
        return "dockerd did not answer within 60 s"


@contextlib.contextmanager
def run_lock(shared: Path, name: str):  # noqa: ANN201
    """An exclusive lock for the whole run (every xdist worker): ``shared`` is the run's common temp dir."""
    with open(shared / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_engine(shared: Path) -> str | None:
    """The run's engine with the base image, started at most once whatever the number of workers; None when both are
    there, else the reason they are not."""
    with run_lock(shared, "docker"):
        reason = Engine(shared).start()
        return reason or ensure_base_image()


def stop_started_engine(shared: Path, timeout: float = 30) -> None:
    """Stop the dockerd this run started (its pid in ``shared``), once every worker is done; one found running is
    left alone."""
    pid_file = shared / "dockerd.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):  # without xdist this process started it: reap it
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            os.kill(pid, 0)  # ProcessLookupError once it is gone
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)


def ensure_base_image() -> str | None:
    """Build the local base image unless the engine has it; None on success, else the reason."""
    import docker

    client = docker.from_env(timeout=600)
    try:
        client.images.get(BASE_IMAGE)
        return None
    except docker.errors.ImageNotFound:
        pass
    if not shutil.which("debootstrap"):
        return "the local base image needs debootstrap (apt-get install debootstrap)"
    with tempfile.TemporaryDirectory(prefix="modelfunc-base-") as tmp:
        root = Path(tmp) / "root"
        proc = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                               "bookworm", str(root)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            return f"debootstrap failed: {proc.stdout[-500:]}{proc.stderr[-500:]}"
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        client.api.import_image_from_stream(tar.stdout, repository=BASE_IMAGE.split(":")[0],
                                            tag=BASE_IMAGE.split(":")[1])
        tar.wait()
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """Debian's docker-registry on 127.0.0.1, optionally with htpasswd (bcrypt) authentication."""

    def __init__(self, workdir: Path, *, user: str | None = None, password: str | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.user, self.password = user, password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        exe = shutil.which("docker-registry")
        if not exe:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.user:
            import bcrypt

            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
            (self.workdir / "htpasswd").write_text(f"{self.user}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: modelfunc\n    path: {self.workdir / 'htpasswd'}\n"
        config = self.workdir / "config.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: "
                          f"{self.workdir / 'data'}\n  delete:\n    enabled: true\nhttp:\n  addr: {self.host}\n{auth}")
        self.log = self.workdir / "registry.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([exe, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://{self.host}/v2/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not start: {self.log.read_text()[-500:]}")

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        auth = (self.user, self.password) if self.user else None
        resp = httpx.head(f"http://{self.host}/v2/{repository}/manifests/{reference}", auth=auth, timeout=10,
                          headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None

    def tags(self, repository: str) -> list[str]:
        auth = (self.user, self.password) if self.user else None
        resp = httpx.get(f"http://{self.host}/v2/{repository}/tags/list", auth=auth, timeout=10)
        return (resp.json().get("tags") or []) if resp.status_code == 200 else []

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM, 20)

    def forget_images(self) -> list[str]:
        """Untag what the tests tagged for this registry in the engine (its port is never used again, so the
        tags would only pile up run after run); the base image and shared layers stay. Returns the tags."""
        import docker

        client = docker.from_env(timeout=60)
        removed = []
        for image in client.images.list():
            for tag in image.tags:
                if tag.startswith(f"{self.host}/"):
                    client.images.remove(tag)
                    removed.append(tag)
        return removed


def package(repo: Path, out: Path, *args: str, env: dict[str, str] | None = None):  # noqa: ANN201
    """`modelfunc package` on the local base image: (the finished process, its --json report or None)."""
    result = run_modelfunc("package", str(repo), "--out", str(out), "--base-image", BASE_IMAGE, "--no-pull",
                           "--json", str(out.parent / f"{out.name}.json"), *args, env=env, timeout=900)
    data = json.loads((out.parent / f"{out.name}.json").read_text()) if (out.parent / f"{out.name}.json").exists() \
        else None
    return result, data
