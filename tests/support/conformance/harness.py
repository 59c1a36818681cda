"""Run each catalogue script under azmlinfsrv and under `modelfunc serve`, side by side, and record both answers; and
push the same bodies through the runtime's blob and Service Bus paths (triggers.py), beside them.

azmlinfsrv is started through its own entry point (``azureml_inference_server_http.amlserver.run``, what the
``azmlinfsrv`` command calls: gunicorn, one sync worker) with one change: it binds 127.0.0.1 instead of its hard-coded
0.0.0.0. It runs from its own venv (``make .venv-aml/.installed``), with the same numpy, pandas, inference-schema,
Flask and Werkzeug versions as modelfunc's. ``modelfunc serve`` is the real CLI. Both are forked from a fork server per
interpreter (zygote.py) that has imported the heavy libraries once: start-up is most of the suite's time. So is the
trigger driver (triggers.py), a third process per script that loads score.py with the runtime, as an app would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .catalogue import Req, Script, requests_for, trigger_requests

ROOT = Path(__file__).resolve().parents[3]



def oracle_python() -> Path | None:
    """The oracle's interpreter: $MODELFUNC_TEST_AZMLINFSRV_PYTHON, else the venv `make` installs it into."""
    explicit = os.environ.get("MODELFUNC_TEST_AZMLINFSRV_PYTHON")
    if explicit:
        return Path(explicit)
    local = ROOT / ".venv-aml" / "bin" / "python"
    return local if local.exists() else None


@dataclass
class Answer:
    """What one server answered to one request (status None: no answer, see error)."""

    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


@dataclass
class Run:
    """Both servers on one script: did each start, and their answers, request by request."""

    script: Script
    started: dict[str, bool]
    logs: dict[str, str]
    answers: dict[str, tuple[Answer, Answer]] = field(default_factory=dict)  # request id → (azmlinfsrv, modelfunc)
    seconds: float = 0.0
    pids: list[int] = field(default_factory=list)
    log_files: dict[str, Path] = field(default_factory=dict)
    # trigger (blob, message) → request id → what triggers.py recorded: {"outputs": {binding: [type, b64]}, "raised"}
    triggers: dict[str, dict[str, dict]] = field(default_factory=dict)
    # ?version= → both answers to GET swagger.json (tests/host/test_openapi.py), asked before any request above
    documents: dict[str | None, tuple[httpx.Response, httpx.Response]] = field(default_factory=dict)


def _free_port() -> int:
    from modelfunc.azurite import free_port

    return free_port()


def write_repo(script: Script, parent: Path) -> Path:
    """A model repo for the script, as a user would have it: score.py, model/, environment.yml, modelfunc.yaml."""
    repo = parent / script.name
    (repo / "model").mkdir(parents=True)
    (repo / "samples").mkdir()
    shutil.copyfile(script.path, repo / "score.py")
    for name, data in script.model.items():
        (repo / "model" / name).write_bytes(data)
    (repo / "model" / "README").write_text("model files of the conformance script\n")
    (repo / "samples" / "input.json").write_bytes(script.sample_bytes)
    (repo / "samples" / "expected.json").write_text("{}\n")
    (repo / "environment.yml").write_text(
        "dependencies:\n  - python=3.11\n  - pip:\n      - numpy\n      - pandas\n"
        "      - inference-schema[numpy-support,pandas-support]\n      - azureml-contrib-services\n")
    methods = ", ".join(script.methods)
    (repo / "modelfunc.yaml").write_text(
        f"name: conf-{script.name.replace('_', '-')}\ntrigger:\n  type: http\n  auth_level: anonymous\n"
        f"  route: score\n  methods: [{methods}]\n")
    return repo


TRIGGERS_DRIVER = Path(__file__).with_name("triggers.py")


class Zygote:
    """One fork server (zygote.py) per interpreter: the heavy imports happen once, each server is a fork."""

    def __init__(self, kind: str, python: Path | str, *, wait: bool = True) -> None:
        self.kind = kind
        self.proc = subprocess.Popen([str(python), str(Path(__file__).with_name("zygote.py")), kind],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lock = threading.Lock()
        self.version: str | None = None
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until the fork server has imported its libraries (``wait=False`` lets two of them import side by side)."""
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the {self.kind} fork server did not start (exit code {self.proc.wait()})")
        self.version = json.loads(line).get("version")

    def spawn(self, argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> int:
        with self.lock:
            self.proc.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd), "env": env, "log": str(log)}) + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())["pid"]  # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=30)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped) has exited too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait(pid: int, ready: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if not alive(pid):
            return False
        time.sleep(0.05)
    return False


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pids: list[int], timeout: float = 30) -> None:
    """Wait until the signalled servers are gone; SIGKILL the process group of any still there."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def send(client: httpx.Client, base: str, req: Req) -> Answer:
    url = base + ("/" if req.slash else "")
    headers = list(req.headers)
    if req.ctype is not None:
        headers.append(("Content-Type", req.ctype))
    content: bytes | Iterator[bytes] | None = req.body
    if req.chunked and req.body is not None:
        body = req.body
        content = iter([body[i:i + 4096] for i in range(0, len(body), 4096)] or [b""])
    try:
        resp = client.request(req.method, url, params=list(req.query) or None, headers=headers, content=content)
    except httpx.HTTPError as e:
        return Answer(None, error=f"{type(e).__name__}: {e}")
    return Answer(resp.status_code, [(k.lower(), v) for k, v in resp.headers.multi_items()], resp.content)


def fetch_document(base: str, version: str | None, *, prefix: str = "/api") -> httpx.Response:
    """GET the OpenAPI document (azmlinfsrv: /swagger.json, prefix ""; the local host: /api/swagger.json)."""
    return httpx.get(f"{base}{prefix}/swagger.json", params=None if version is None else {"version": version},
                     timeout=30)


def run_script(script: Script, work: Path, zygotes: dict[str, Zygote],
               documents: tuple[str | None, ...] = (), requests: bool = True) -> Run:
    """The script on both servers (and its trigger driver); ``documents``: the ?version= of GET swagger.json to ask
    both servers for first, on the freshly started servers (tests/host/test_openapi.py compares them)."""
    started_at = time.monotonic()
    repo = write_repo(script, work)
    port = _free_port()
    logs = {"azmlinfsrv": work / f"{script.name}.azmlinfsrv.log", "modelfunc": work / f"{script.name}.modelfunc.log"}
    ready_file = work / f"{script.name}.ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MODELFUNC_CONNECTION"))}
    oracle_env = {**env, "AZUREML_MODEL_DIR": str(repo / "model"), "GUNICORN_CMD_ARGS": "--no-control-socket",
                  "PYTHONUNBUFFERED": "1"}
    az = zygotes["azmlinfsrv"].spawn(["azmlinfsrv", "--entry_script", str(repo / "score.py"), "--port", str(port),
                                      "--worker_count", "1"], cwd=repo, env=oracle_env, log=logs["azmlinfsrv"])
    mf = zygotes["modelfunc"].spawn(["modelfunc", "serve", str(repo), "--port", "0", "--ready-file", str(ready_file),
                                     "--no-azurite"], cwd=repo, env={**env, "PYTHONUNBUFFERED": "1"},
                                    log=logs["modelfunc"])
    trigger_result = work / f"{script.name}.triggers.json"
    driver = None
    # the blob and message paths, in a process of their own (as an app's worker is)
    if requests and trigger_requests(script):
        logs["triggers"] = work / f"{script.name}.triggers.log"
        driver = zygotes["modelfunc"].spawn([str(TRIGGERS_DRIVER), script.name, str(repo), str(trigger_result)],
                                            cwd=repo, env={**env, "PYTHONUNBUFFERED": "1"}, log=logs["triggers"])
    try:
        az_base = f"http://127.0.0.1:{port}"
        started = {"azmlinfsrv": _wait(az, _http_ok(f"{az_base}/"), 90),
                   "modelfunc": _wait(mf, ready_file.exists, 90)}
        result = Run(script, started, {})
        if all(started.values()):
            mf_base = json.loads(ready_file.read_text())["url"]
            result.documents = {q: (fetch_document(az_base, q, prefix=""), fetch_document(mf_base, q))
                                for q in documents}
            with httpx.Client(timeout=60, follow_redirects=False) as az_client, \
                    httpx.Client(timeout=60, follow_redirects=False) as mf_client:
                for req in requests_for(script) if requests else ():
                    result.answers[req.id] = (send(az_client, f"{az_base}/score", req),
                                              send(mf_client, f"{mf_base}/api/score", req))
        if driver is not None and _wait(driver, trigger_result.exists, 120):
            result.triggers = json.loads(trigger_result.read_text(encoding="utf-8"))
    finally:  # stopped in the background: run_all waits for them at the end
        _signal(az, signal.SIGTERM)
        _signal(mf, signal.SIGINT)
        if driver is not None:
            _signal(driver, signal.SIGTERM)
    result.pids = [az, mf] + ([driver] if driver is not None else [])
    result.log_files = logs
    result.seconds = time.monotonic() - started_at
    return result


@dataclass
class BlobApp:
    """`modelfunc serve` of a script's blob-trigger app (forked from the modelfunc fork server)."""

    script: Script
    repo: Path
    pid: int
    ready_file: Path
    log: Path
    containers: dict[str, str]  # input, output, error

    def ready(self, timeout: float = 90) -> bool:
        return _wait(self.pid, self.ready_file.exists, timeout)

    def output_name(self, blob: str) -> str:
        return f"{blob}_out.json"

    def error_name(self, blob: str) -> str:
        return f"{blob}_error.json"


def start_blob_app(script: Script, work: Path, zygote: Zygote, connection_string: str, tag: str) -> BlobApp:
    """The script's repo with a blob trigger (containers of its own, named with ``tag``), served on the storage
    account of ``connection_string``: ``modelfunc serve`` packages the app and runs its blob listener."""
    repo = write_repo(script, work)
    containers = {kind: f"{kind[:3]}-{tag}" for kind in ("input", "output", "error")}
    (repo / "modelfunc.yaml").write_text(
        f"name: conf-{script.name.replace('_', '-')}\ntrigger:\n  type: blob\n"
        f"  input_path: {containers['input']}/{{blobname}}.json\n"
        f"  output_path: {containers['output']}/{{blobname}}_out.json\n"
        f"  error_path: {containers['error']}/{{blobname}}_error.json\n")
    ready_file, log = work / f"{script.name}.ready.json", work / f"{script.name}.modelfunc.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MODELFUNC_CONNECTION"))}
    pid = zygote.spawn(["modelfunc", "serve", str(repo), "--port", "0", "--ready-file", str(ready_file),
                        "--poll-interval", "0.1"], cwd=repo,
                       env={**env, "PYTHONUNBUFFERED": "1", "MODELFUNC_CONNECTION_STRING": connection_string},
                       log=log)
    return BlobApp(script, repo, pid, ready_file, log, containers)


def stop(pids: list[int]) -> None:
    """SIGINT (as Ctrl-C stops `modelfunc serve`), and wait until they are gone."""
    for pid in pids:
        _signal(pid, signal.SIGINT)
    _reap(pids)


def start_zygotes(oracle: Path) -> dict[str, Zygote]:
    """Both fork servers (close them with close_zygotes)."""
    zygotes = {"modelfunc": Zygote("modelfunc", sys.executable, wait=False)}
    try:  # both import their libraries at once
        zygotes["azmlinfsrv"] = Zygote("azmlinfsrv", oracle, wait=False)
        for zygote in zygotes.values():
            zygote.wait_ready()
    except BaseException:
        close_zygotes(zygotes)
        raise
    return zygotes


def close_zygotes(zygotes: dict[str, Zygote]) -> None:
    for zygote in zygotes.values():
        zygote.close()


def run_all(scripts: list[Script], work: Path, oracle: Path, parallel: int = 2,
            zygotes: dict[str, Zygote] | None = None,
            documents: dict[str, tuple[str | None, ...]] | None = None, requests: bool = True) -> dict[str, Run]:
    """Every script on both servers and through both triggers, ``parallel`` scripts at a time, forked from
    ``zygotes`` (started and closed here when not given); ``documents``: script name → the ?version= of its OpenAPI
    document to ask both servers for (run_script); ``requests=False``: the documents only (no conformance requests,
    no trigger driver). The azmlinfsrv version is in ``run_all.oracle_version``
    afterwards."""
    own = zygotes is None
    if zygotes is None:
        zygotes = start_zygotes(oracle)
    run_all.oracle_version = zygotes["azmlinfsrv"].version  # type: ignore[attr-defined]
    try:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            runs = list(pool.map(lambda s: run_script(s, work, zygotes, (documents or {}).get(s.name, ()), requests),
                                 scripts))
        _reap([pid for r in runs for pid in r.pids])
    finally:
        if own:
            close_zygotes(zygotes)
    for r in runs:
        r.logs = {k: p.read_text(encoding="utf-8", errors="replace") for k, p in r.log_files.items()}
    return {r.script.name: r for r in runs}
