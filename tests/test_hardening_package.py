"""Issue 13, the packaging, image, runtime and local-host side: each case a fault that a hostile or careless user hit,
reproduced on the real parts (the CLI in a child process, `modelfunc serve` with uvicorn, Azurite, tmpfs mounts, a
network namespace, raw sockets) and fixed.

* files copied only from inside the repo: a symlink in model/ that leads out of it is an error naming the link and
  its target (links inside the repo are shipped as copies); a named pipe is never opened;
* a base image or tag that is not one Docker reference (a newline would add a Dockerfile instruction);
* JSON nested 100,000 deep: 400 over HTTP, an error record for a blob;
* an import of score.py that never returns: `serve` stops, saying where it is stuck;
* staging folders of a killed `package`: removed by the next run once proven abandoned (their flock is free);
* the dependency layer cache: verified against its digest, rebuilt (and said) when it does not match;
* the local host's limits: request body (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT), header and body timeouts, the admin
  API's master key when bound elsewhere than 127.0.0.1/::1;
* clear errors for a full disk, `--out` on a mount point or `.`, a read-only cache, a bad local.settings.json, PUT,
  PATCH or DELETE for a run() that cannot take them, `--host ::1`;
* a property-based layer (hypothesis) over request bodies through the runtime.

Every case is a row of docs/bad-inputs.md: ``ROWS`` is built from the same case lists the tests run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLES, FIXTURES, Hosts, copy_example, run_modelfunc

ROOT = Path(__file__).resolve().parents[1]
FILE = Path(__file__).name
SECRET_TEXT = "root:TOPSECRET-13-a8f3:19000:0:99999:7:::\n"


def node(test: str, case_id: str) -> str:
    return f"{FILE}::{test}[{case_id}]"


def ids(cases: list[tuple]) -> list[str]:
    return [c[0] for c in cases]


def staging_leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")) \
        if out.parent.is_dir() else []


def package(repo: Path, out: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_modelfunc("package", str(repo), "--no-build", "--out", str(out), *args, env=env, cwd=cwd,
                         timeout=timeout)


def clean_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The stderr of a run that failed on purpose: the exit code, no traceback, an `error:` line."""
    err = result.stderr
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    assert "error: " in err, err
    return err


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` for the test (root only), unmounted after; skips with the reason otherwise."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# ================================================================== (2) symlinks and special files in model/

FIFO, SOCKET = "<fifo>", "<socket>"
# (id, name in model/, link target or FIFO/SOCKET, what the error says after "error: <repo>/model/<name>: ")
MODEL_ENTRIES = [
    ("model-link-to-etc-shadow", "shadow", "/etc/shadow",
     "is a symbolic link to /etc/shadow, outside the model repo: model files are copied only from inside the repo"),
    ("model-link-to-proc-self-environ", "environ", "/proc/self/environ",
     "is a symbolic link to /proc/self/environ, outside the model repo"),
    ("model-link-relative-out-of-the-repo", "creds.json", "../../secret/creds.json",
     "is a symbolic link to ../../secret/creds.json, outside the model repo"),
    ("model-folder-link-out-of-the-repo", "extra", "<tmp>/secret",
     "is a symbolic link to <tmp>/secret, outside the model repo"),
    ("model-link-to-nothing", "weights.bin", "missing/weights.bin",
     "is a symbolic link to missing/weights.bin, which does not exist: the model would ship without it"),
    ("model-link-loop", "again", ".",
     "is a symbolic link to ., a folder above it: the model directory would never end"),
    ("model-named-pipe", "pipe.bin", FIFO, "is a named pipe (FIFO), not a regular file: only files and folders can be "
                                           "model files"),
    ("model-socket", "s.sock", SOCKET, "is a socket, not a regular file"),
]
MODEL_HINT = "hint: copy the file itself into the model directory"


@pytest.mark.parametrize(("name", "target", "message"), [c[1:] for c in MODEL_ENTRIES], ids=ids(MODEL_ENTRIES))
def test_model_files_come_only_from_inside_the_repo(example, tmp_path: Path, name: str, target: str,
                                                      message: str) -> None:  # noqa: ANN001
    """Issue 13 (2): /etc/shadow and /proc/self/environ ended up in build/app/model and layers/model.tar."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "creds.json").write_text(SECRET_TEXT)
    repo = example("diabetes-http")
    path = repo / "model" / name
    if target == FIFO:
        os.mkfifo(path)
    elif target == SOCKET:
        here = Path.cwd()
        os.chdir(path.parent)  # a socket path is limited to ~107 bytes: bind it by its short relative name
        try:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(name)
            sock.close()
        finally:
            os.chdir(here)
    else:
        path.symlink_to(target.replace("<tmp>", str(tmp_path)))
    out = tmp_path / "out"
    err = clean_error(package(repo, out, timeout=60))
    expected = f"error: {repo.resolve() / 'model' / name}: {message.replace('<tmp>', str(tmp_path))}"
    assert err.startswith(expected), err
    if target not in (FIFO, SOCKET):
        assert MODEL_HINT in err or "hint: remove the link" in err, err
    assert not out.exists() and staging_leftovers(out) == []
    for leftover in tmp_path.rglob("*"):  # nothing anywhere holds the secret but its own file
        if leftover.is_file() and not leftover.is_symlink() and leftover != secret / "creds.json":
            assert b"TOPSECRET-13" not in leftover.read_bytes(), leftover


def test_model_links_inside_the_repo_are_shipped_as_copies(example, tmp_path: Path) -> None:  # noqa: ANN001
    """The decision for links that stay inside the repo: followed, shipped as a copy of what they point to (as a
    link beside score.py is), so the app and the model layer hold regular files only."""
    import tarfile

    repo = example("diabetes-http")
    (repo / "assets").mkdir()
    (repo / "assets" / "weights.json").write_text('{"w": 1}\n')
    (repo / "model" / "weights.json").symlink_to("../assets/weights.json")
    (repo / "model" / "shared").symlink_to("../assets")
    out = tmp_path / "out"
    result = package(repo, out)
    assert result.returncode == 0, result.stderr
    model = out / "app" / "model"
    assert (model / "weights.json").read_text() == '{"w": 1}\n'
    assert (model / "shared" / "weights.json").read_text() == '{"w": 1}\n'
    assert not [p for p in (out / "app").rglob("*") if p.is_symlink()]
    with tarfile.open(out / "layers" / "model.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert not [m for m in members.values() if m.issym() or m.islnk()]
    assert {"home/site/wwwroot/model/weights.json", "home/site/wwwroot/model/shared/weights.json",
            "home/site/wwwroot/model/model.json"} <= set(members)


# ================================================================== (12) named pipes beside score.py

# (id, the FIFO's path in the repo, score.py's extra first line, error (exit 2) or the line `package` prints (exit 0))
FIFO_CASES = [
    ("fifo-module-imported-by-score-py", "helper.py", "import helper\n",
     "error: <repo>/helper.py: is a named pipe (FIFO), not a regular file, and score.py imports it: it cannot be read"),
    ("fifo-module-in-an-imported-package", "helpers/extra.py", "import helpers\n",
     "  left out: helpers/extra.py (a named pipe (FIFO), not a regular file: never read)"),
    ("fifo-named-py-beside-score-py", "notes.py", "",
     "  left out: notes.py (a named pipe (FIFO), not a regular file: never read)"),
]


@pytest.mark.parametrize(("fifo", "imports", "message"), [c[1:] for c in FIFO_CASES], ids=ids(FIFO_CASES))
def test_a_named_pipe_beside_score_py_never_hangs_package(example, tmp_path: Path, fifo: str, imports: str,
                                                           message: str) -> None:  # noqa: ANN001
    """Issue 13 (12): a FIFO named *.py beside score.py made `package` hang for ever (nothing ever writes to it)."""
    repo = example("diabetes-http")
    if "/" in fifo:
        (repo / fifo).parent.mkdir()
        (repo / fifo).parent.joinpath("__init__.py").write_text("")
    os.mkfifo(repo / fifo)
    (repo / "score.py").write_text(imports + (repo / "score.py").read_text())
    started = time.monotonic()
    try:
        result = package(repo, tmp_path / "out", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("package hung on the named pipe")
    assert time.monotonic() - started < 60
    expected = message.replace("<repo>", str(repo.resolve()))
    if expected.startswith("error: "):
        assert clean_error(result).startswith(expected), result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert expected in result.stderr.splitlines(), result.stderr
        assert not (tmp_path / "out" / "app" / fifo).exists()


# ================================================================== (12) an import that never returns

# (id, score.py's stuck line, what the stack shows)
IMPORT_HANGS = [
    ("import-sleeps-for-ever", "time.sleep(3600)", "time.sleep(3600)"),
    ("import-waits-on-an-event", "threading.Event().wait()", "threading.Event().wait()"),
    ("import-loops-for-ever", "while True:\n    pass", "while True:"),
]
IMPORT_HANG_MESSAGE = ("error: importing <app>/function_app.py did not finish within 3 s: the app (score.py, or a "
                       "module it imports) is stuck at import, before init(); it is here (most recent call last):")


@pytest.mark.parametrize(("stuck", "shown"), [c[1:] for c in IMPORT_HANGS], ids=ids(IMPORT_HANGS))
def test_an_import_that_never_returns_stops_serve_saying_where(example, serve, stuck: str, shown: str) -> None:  # noqa: ANN001
    repo = example("diabetes-http")
    (repo / "score.py").write_text("import threading\nimport time\n\n" + stuck + "\n\n"
                                   + (repo / "score.py").read_text())
    started = time.monotonic()
    host = serve(repo, extra=("--setting", "MODELFUNC_IMPORT_TIMEOUT=3"), expect_ready=False, timeout=120)
    try:
        code = host.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still hangs on the import:\n{host.output()}")
    out = host.output()
    assert code == 1, out
    app = repo.resolve() / "build" / "app"
    assert IMPORT_HANG_MESSAGE.replace("<app>", str(app)) in out, out
    stack = out.split("(most recent call last):", 1)[1]
    assert f'File "{app / "score.py"}", line 4' in stack and shown.splitlines()[0] in stack, out
    assert "MODELFUNC_IMPORT_TIMEOUT=<seconds>" in out and "Traceback" not in out, out
    assert time.monotonic() - started < 60


INIT_HANGS = [("init-never-returns", "init() of score.py did not finish within 1 s; init() is at (most recent call "
                                     "last):")]


@pytest.mark.parametrize("message", [c[1] for c in INIT_HANGS], ids=ids(INIT_HANGS))
def test_an_init_that_never_returns_says_where_it_is(tmp_path: Path, message: str) -> None:
    from modelfunc.runtime.modelfunc_runtime import EntryScript, EntryScriptError

    script = tmp_path / "score.py"
    script.write_text("import threading\n\n\ndef init():\n    threading.Event().wait(30)\n\n\ndef run(data):\n"
                      "    return data\n")
    entry = EntryScript(script, model_dir=tmp_path)
    with pytest.raises(EntryScriptError) as caught:
        entry.wait_ready(timeout=1)
    assert str(caught.value).startswith(message), caught.value
    assert f'File "{script}", line 5, in init' in str(caught.value)


# ================================================================== (11) JSON nested 100,000 deep

DEEP = 100_000
DEEP_MESSAGE = "The body is nested too deeply to be parsed as JSON"
DEEP_BODY = b'{"data": ' + b"[" * DEEP + b"]" * DEEP + b"}"
# (id, score.py (None: the example's @input_schema one), the body, status, the start of the message)
DEEP_HTTP = [("http-json-nested-100000-deep-to-a-schema-run", None, DEEP_BODY, 400, DEEP_MESSAGE),
             ("http-json-nested-100000-deep-to-a-plain-run", EXAMPLES / "diabetes-blob" / "score.py", DEEP_BODY, 400,
              DEEP_MESSAGE)]
DEEP_BLOBS = [("blob-json-nested-100000-deep", b"[" * DEEP + b"]" * DEEP, 400, DEEP_MESSAGE)]


@pytest.mark.parametrize(("score", "body", "status", "message"), [c[1:] for c in DEEP_HTTP], ids=ids(DEEP_HTTP))
def test_deeply_nested_json_is_a_400_over_http(example, serve, score: Path | None, body: bytes, status: int,
                                               message: str) -> None:  # noqa: ANN001
    """The runtime parses an @input_schema run()'s body itself; an undecorated run() parses it (json.loads), and the
    parser running out of stack there is the input's fault too."""
    repo = example("diabetes-http")
    if score is not None:
        shutil.copyfile(score, repo / "score.py")
    host = serve(repo)
    resp = httpx.post(f"{host.url}/api/score", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == status, resp.text
    assert resp.json()["message"].startswith(message), resp.text
    assert httpx.post(f"{host.url}/api/score", content=(EXAMPLES / "diabetes-http" / "samples" / "input.json")
                      .read_bytes(), headers={"content-type": "application/json"}, timeout=30).status_code == 200


@pytest.mark.parametrize(("raw", "status", "message"), [c[1:] for c in DEEP_BLOBS], ids=ids(DEEP_BLOBS))
def test_deeply_nested_json_blob_gets_an_error_record(example, serve, azurite, raw: bytes, status: int,
                                                      message: str) -> None:  # noqa: ANN001
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    tag = uuid.uuid4().hex[:8]
    repo = example("diabetes-blob")
    (repo / "modelfunc.yaml").write_text(
        f"trigger:\n  type: blob\n  input_path: in-{tag}/{{blobname}}.json\n"
        f"  output_path: out-{tag}/{{blobname}}_out.json\n  error_path: err-{tag}/{{blobname}}_error.json\n")
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    host = serve(repo, connection_string=azurite.connection_string)
    storage.get_blob_client(f"in-{tag}", "deep.json").upload_blob(raw)
    record_blob = storage.get_blob_client(f"err-{tag}", "deep_error.json")
    deadline = time.monotonic() + 30
    while True:
        try:
            record = json.loads(record_blob.download_blob().readall())
            break
        except ResourceNotFoundError:
            assert time.monotonic() < deadline, host.output()
            time.sleep(0.05)
    assert record["status"] == status and record["response"]["message"].startswith(message), record
    assert host.status()["blob_listeners"]["score_blob"]["poisoned"] == 0


# ================================================================== (6) --base-image and --tag

# (id, option, value, what the error says)
BAD_REFERENCES = [
    ("base-image-newline-adds-an-instruction", "--base-image", "modelfunc-local/python:3.11\nRUN echo pwned >/pwned",
     "error: --base-image: 'modelfunc-local/python:3.11\\nRUN echo pwned >/pwned' is not an image reference"),
    ("base-image-trailing-newline", "--base-image", "modelfunc-local/python:3.11\n",
     "error: --base-image: 'modelfunc-local/python:3.11\\n' is not an image reference"),
    ("base-image-with-a-space", "--base-image", "python 3.11",
     "error: --base-image: 'python 3.11' is not an image reference"),
    ("base-image-bad-digest", "--base-image", "python@sha256:xyz",
     "error: --base-image: 'python@sha256:xyz' is not an image reference"),
    ("tag-trailing-newline", "--tag", "v1\n", "error: --tag: 'v1\\n' is not an image tag"),
]


@pytest.mark.parametrize(("option", "value", "message"), [c[1:] for c in BAD_REFERENCES], ids=ids(BAD_REFERENCES))
def test_an_image_reference_is_one_reference(example, tmp_path: Path, option: str, value: str, message: str) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    err = clean_error(package(example("diabetes-http"), out, option, value, timeout=60))
    assert err.startswith(message), err
    assert "hint: [REGISTRY[:PORT]/]" in err or "hint: up to 128" in err
    assert not out.exists()


def test_the_default_and_a_digest_base_image_are_references(example, tmp_path: Path) -> None:  # noqa: ANN001
    digest = "modelfunc-local/python@sha256:" + "0" * 64
    result = package(example("diabetes-http"), tmp_path / "out", "--base-image", digest)
    assert result.returncode == 0, result.stderr
    assert f"FROM {digest}\n" in (tmp_path / "out" / "Dockerfile").read_text()


# ================================================================== (13) staging folders of a killed package

KILL = """\
import os, pathlib, signal, sys
from modelfunc.appgen import prepare_app, write_app
from modelfunc.config import load_project
from modelfunc.staging import staged
repo, out, when = sys.argv[1:]
if when == "between-the-renames":  # killed after the old output moved away, before the new one moved in
    real = pathlib.Path.rename
    def rename(self, target):
        if pathlib.Path(target) == pathlib.Path(out).resolve():
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, target)
    pathlib.Path.rename = rename
def hook(staging):
    if when == "before-the-swap":
        os.kill(os.getpid(), signal.SIGKILL)
    if when == "alive":
        print("staging", flush=True)
        sys.stdin.readline()
plan = prepare_app(load_project(repo), out)
with staged(plan.out_dir) as staging:  # as `package` writes the app and its build context
    write_app(plan, staging)
    hook(staging)
"""

# (id, how the earlier run ended, what the next `package` prints)
STAGING_CASES = [
    ("staging-left-by-sigkill", "before-the-swap",
     "removed .out.<random>: the staging folder of a package run that never finished (pid <pid>, started <time>, no "
     "longer running)"),
    ("staging-left-by-sigkill-between-the-renames", "between-the-renames",
     "removed .out.<random>: … no longer running); put back the output it was replacing as out"),
    ("staging-of-a-run-still-going", "alive",
     "package finishes; the other run's staging folder is left alone (its lock is held), and that run finishes too"),
]


def _render_in_child(repo: Path, out: Path, when: str, **kwargs) -> subprocess.Popen[str]:  # noqa: ANN003
    return subprocess.Popen([sys.executable, "-c", KILL, str(repo), str(out), when], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.mark.parametrize(("when", "message"), [c[1:] for c in STAGING_CASES], ids=ids(STAGING_CASES))
def test_staging_folders_of_a_killed_package_are_removed_by_the_next(example, tmp_path: Path, when: str,
                                                                      message: str) -> None:  # noqa: ANN001
    repo = example("diabetes-http")
    out = tmp_path / "out"
    assert package(repo, out).returncode == 0
    first = (out / "app" / "function_app.py").read_bytes()
    if when == "alive":
        child = _render_in_child(repo, out, when, stdin=subprocess.PIPE)
        assert child.stdout.readline() == "staging\n", child.stderr.read()
        live = staging_leftovers(out)
        assert len(live) == 1
        result = package(repo, out)
        assert result.returncode == 0, result.stderr
        assert staging_leftovers(out) == live and "removed ." not in result.stderr  # a live run's folder stays
        child.communicate("go\n", timeout=60)
        assert child.returncode == 0
        assert staging_leftovers(out) == []
        return
    child = _render_in_child(repo, out, when)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    left = staging_leftovers(out)
    assert len(left) == 1, left  # the fault: a killed run leaves its staging folder
    if when == "between-the-renames":
        assert not out.exists()
    result = package(repo, out)
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith(f"removed {left[0]}: ")]
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(rf"removed {re.escape(left[0])}: the staging folder of a package run that never finished "
                        rf"\(pid {child.pid}, started [0-9-]+ [0-9:]+, no longer running\)"
                        + ("; put back the output it was replacing as out" if when == "between-the-renames" else ""),
                        lines[0]), lines[0]
    assert staging_leftovers(out) == []
    assert (out / "app" / "function_app.py").read_bytes() == first
    assert not (out / ".modelfunc-staging").exists() and not (out / ".modelfunc-previous").exists()


def test_a_folder_named_like_staging_without_the_lock_is_never_touched(example, tmp_path: Path) -> None:  # noqa: ANN001
    mine = tmp_path / ".out.mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep\n")
    assert package(example("diabetes-http"), tmp_path / "out").returncode == 0
    assert (mine / "notes.txt").read_text() == "keep\n"


# ================================================================== (14) the dependency layer cache's digest

# (id, what is done to the cache entry, the reason the next run gives)
CACHE_FAULTS = [
    ("layer-cache-digest-file-empty", "empty", "dependencies-<key>.sha256 is empty"),
    ("layer-cache-digest-file-not-a-digest", "none", "dependencies-<key>.sha256 holds 'None', not a sha256 digest"),
    ("layer-cache-tar-changed", "tar", "dependencies-<key>.tar has digest sha256:…, not the sha256:… recorded for it"),
    ("layer-cache-digest-file-missing", "missing", "dependencies-<key>.sha256 is missing"),
]
CACHE_MESSAGE = ("dependencies: the cached layer dependencies-<key>.tar cannot be used (<reason>): building it "
                 "again, and the cache entry is replaced")


def default_pip_cache() -> Path:
    from modelfunc.appenv import default_pip_cache as pip_cache

    return pip_cache()


@pytest.fixture(scope="module")
def primed_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A modelfunc cache (XDG_CACHE_HOME) holding the resolved dependencies layer of the diabetes-servicebus example."""
    tmp = tmp_path_factory.mktemp("primed")
    repo = copy_example("diabetes-servicebus", tmp)
    result = package(repo, tmp / "out", "--pip-cache", str(default_pip_cache()), env={"XDG_CACHE_HOME": str(tmp / "x")})
    assert result.returncode == 0, result.stderr
    return tmp / "x"


@pytest.mark.parametrize(("fault", "reason"), [c[1:] for c in CACHE_FAULTS], ids=ids(CACHE_FAULTS))
def test_a_cached_layer_that_does_not_match_its_digest_is_rebuilt(example, tmp_path: Path, primed_cache: Path,
                                                                  fault: str, reason: str) -> None:  # noqa: ANN001
    cache = tmp_path / "x"
    shutil.copytree(primed_cache, cache)
    (tar,) = (cache / "modelfunc" / "layers").glob("dependencies-*.tar")
    digest = tar.with_suffix(".sha256")
    key = tar.stem.removeprefix("dependencies-")
    {"empty": lambda: digest.write_text(""), "none": lambda: digest.write_text("None\n"),
     "tar": lambda: tar.write_bytes(tar.read_bytes() + b"\0" * 512), "missing": digest.unlink}[fault]()
    out = tmp_path / "out"
    result = package(example("diabetes-servicebus"), out, "--pip-cache", str(default_pip_cache()),
                     env={"XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 0, result.stderr
    said = [ln for ln in result.stderr.splitlines() if ln.startswith("dependencies: the cached layer")]
    assert len(said) == 1, result.stderr
    pattern = re.escape(CACHE_MESSAGE.replace("<key>", key).replace("<reason>", reason.replace("<key>", key))) \
        .replace("…", "[0-9a-f]{12}…")
    assert re.fullmatch(pattern, said[0]), said[0]
    dockerfile = (out / "Dockerfile").read_text()
    assert "ADD layers/dependencies.tar /" in dockerfile
    assert "# None" not in dockerfile and "pip install" not in dockerfile
    # the entry is whole again, and what the image gets is what the digest says
    recorded = digest.read_text().strip()
    assert recorded == "sha256:" + hashlib.sha256(tar.read_bytes()).hexdigest()
    assert recorded == "sha256:" + hashlib.sha256((out / "layers" / "dependencies.tar").read_bytes()).hexdigest()


# ================================================================== (16) disk full, read-only caches

NO_SPACE = [("disk-full-while-writing-the-output",
             "error: cannot write <tmp>/full/out/layers/dependencies.tar: No space left on device",
             "hint: free some space on that disk, or choose another --out (nothing was replaced: the previous output "
             "is as it was)")]


@pytest.mark.parametrize("expect", [c[1:] for c in NO_SPACE], ids=ids(NO_SPACE))
def test_a_full_disk_is_a_clear_error_and_leaves_nothing(example, tmp_path: Path, expect: tuple[str, ...]) -> None:  # noqa: ANN001
    with mounted_tmpfs(tmp_path / "full", "size=1m") as full:
        out = full / "out"
        err = clean_error(package(example("diabetes-http"), out, timeout=120))
        for fragment in expect:
            assert fragment.replace("<tmp>", str(tmp_path)) in err, err
        assert list(full.iterdir()) == [], "the failed run left files on the full disk"


# (id, which cache is read-only, what `package` says (it succeeds))
READ_ONLY_CACHES = [
    ("layer-cache-read-only", "layers", "dependencies: the resolved layer is not kept for the next run: Read-only file "
                                        "system (<cache>/modelfunc)"),
    ("pip-cache-read-only", "pip", "dependencies: resolving for CPython 3.11 on linux/x86-64 (pip, wheels only)"),
]


@pytest.mark.parametrize(("which", "message"), [c[1:] for c in READ_ONLY_CACHES], ids=ids(READ_ONLY_CACHES))
def test_a_read_only_cache_costs_only_the_cache(example, tmp_path: Path, primed_cache: Path, which: str,
                                                message: str) -> None:  # noqa: ANN001
    ro = tmp_path / "ro"
    with mounted_tmpfs(ro, "size=64m"):
        if which == "layers":  # an empty cache, read-only: resolving works, keeping the layer cannot
            xdg, pip_cache = ro, default_pip_cache()
        else:  # pip's own cache read-only (the layer cache empty, so pip must run)
            xdg, pip_cache = tmp_path / "x", ro
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        out = tmp_path / "out"
        result = package(example("diabetes-servicebus"), out, "--pip-cache", str(pip_cache),
                         env={"XDG_CACHE_HOME": str(xdg)})
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 0, result.stderr
        assert message.replace("<cache>", str(xdg)) in result.stderr, result.stderr
        assert (out / "layers" / "dependencies.tar").is_file()
        assert "ADD layers/dependencies.tar /" in (out / "Dockerfile").read_text()


# ================================================================== (16) --out on a mount point or `.`

# (id, how --out is given, what the error says)
OUT_CASES = [
    ("out-is-a-mount-point", "mount", "error: output directory <tmp>/mnt is a mount point: modelfunc replaces the "
                                      "output directory as a whole"),
    ("out-is-dot-inside-the-previous-output", "dot-in-previous",
     "error: output directory . is the current directory: modelfunc replaces the output directory as a whole, which "
     "would leave this shell in a deleted directory"),
    ("out-is-dot-in-an-empty-folder", "dot-in-empty", "error: output directory . is the current directory"),
]


@pytest.mark.parametrize(("how", "message"), [c[1:] for c in OUT_CASES], ids=ids(OUT_CASES))
def test_out_that_cannot_be_replaced_whole_is_a_clear_error(example, tmp_path: Path, how: str, message: str) -> None:  # noqa: ANN001
    repo = example("diabetes-http")
    with contextlib.ExitStack() as stack:
        if how == "mount":
            stack.enter_context(mounted_tmpfs(tmp_path / "mnt", "size=16m"))
            out, cwd = tmp_path / "mnt", None
        elif how == "dot-in-previous":
            assert package(repo, tmp_path / "prev").returncode == 0
            out, cwd = Path("."), tmp_path / "prev"
        else:
            (tmp_path / "here").mkdir()
            out, cwd = Path("."), tmp_path / "here"
        before = sorted(p.name for p in (cwd or out).iterdir())
        err = clean_error(package(repo, out, cwd=cwd, timeout=120))
        assert err.startswith(message.replace("<tmp>", str(tmp_path))), err
        assert "hint: " in err
        assert sorted(p.name for p in (cwd or out).iterdir()) == before
        assert staging_leftovers((cwd or out).resolve()) == []


# ================================================================== (16) a bad local.settings.json in serve

# (id, the file's bytes (None: a folder of that name), what the error says after "error: <app>/local.settings.json")
BAD_LOCAL_SETTINGS = [
    ("local-settings-not-json", b'{"Values": {"A": "1",}}', ":1: is not valid JSON: Expecting property name enclosed "
                                                            "in double quotes"),
    ("local-settings-not-utf8", b'{"Values": {"A": "\xff\xfe"}}',
     ": is not UTF-8 text (invalid start byte at byte 18)"),
    ("local-settings-an-array", b'[{"Values": {}}]', ': must be a JSON object with a "Values" object, got an array'),
    ("local-settings-values-an-array", b'{"Values": ["A=1"]}', ': "Values" must be an object of app settings (name: '
                                                              'value), got an array'),
    ("local-settings-value-an-object", b'{"Values": {"A": {"b": 1}}}', ": Values.A: an app setting is a string, got "
                                                                      "an object"),
    ("local-settings-nested-too-deep", b'{"Values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     ": is not valid JSON: nested too deeply"),
    ("local-settings-a-folder", None, ": is not a regular file"),
]


@pytest.fixture(scope="module")
def rendered_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelfunc.appgen import render
    from modelfunc.config import load_project

    tmp = tmp_path_factory.mktemp("app")
    return render(load_project(copy_example("diabetes-http", tmp)), tmp / "out").app_dir


@pytest.mark.parametrize(("content", "message"), [c[1:] for c in BAD_LOCAL_SETTINGS], ids=ids(BAD_LOCAL_SETTINGS))
def test_a_bad_local_settings_json_is_a_clear_error(rendered_app: Path, tmp_path: Path, content: bytes | None,
                                                    message: str) -> None:
    app = tmp_path / "app"
    shutil.copytree(rendered_app, app)
    path = app / "local.settings.json"
    path.unlink()
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = run_modelfunc("serve", str(app), "--port", "0", "--no-azurite", timeout=60)
    err = clean_error(result, code=1)
    assert err.startswith(f"error: {path}{message}"), err
    assert "hint: fix it or remove it" in err or "hint: write it as text" in err


# ================================================================== (17) PUT, PATCH, DELETE run() cannot take

# (id, score.py (None: the example's, with @input_schema), methods, what the error says)
PLAIN_SCORE = EXAMPLES / "diabetes-blob" / "score.py"
BAD_METHODS = [
    ("put-listed-for-an-input-schema-run", None, "[GET, POST, PUT]",
     "error: <repo>/modelfunc.yaml:6: trigger.methods: PUT cannot reach run() in score.py: only a @rawhttp run() takes "
     "it; an @input_schema run() gets GET (the query), POST (the body) and OPTIONS, and Azure ML's scoring server "
     "answers any other method 405, as this app would"),
    ("patch-and-delete-listed-for-a-plain-run", PLAIN_SCORE, "[POST, PATCH, DELETE]",
     "error: <repo>/modelfunc.yaml:6: trigger.methods: PATCH, DELETE cannot reach run() in score.py: only a @rawhttp "
     "run() takes them; an undecorated run() gets"),
]


@pytest.mark.parametrize(("score", "methods", "message"), [c[1:] for c in BAD_METHODS], ids=ids(BAD_METHODS))
def test_methods_run_cannot_take_are_refused_at_package_time(example, tmp_path: Path, score: Path | None,
                                                             methods: str, message: str) -> None:  # noqa: ANN001
    """azmlinfsrv routes /score for GET, POST and OPTIONS and answers anything else 405 (input_parsers.py:
    UnsupportedHTTPMethod); a PUT the function lists could only ever fail, so it is refused where it is written."""
    repo = example("diabetes-http")
    if score is not None:
        shutil.copyfile(score, repo / "score.py")
    config = repo / "modelfunc.yaml"
    config.write_text(config.read_text().replace("methods: [GET, POST]", f"methods: {methods}"))
    err = clean_error(package(repo, tmp_path / "out", timeout=60))
    assert err.startswith(message.replace("<repo>", str(repo.resolve()))), err
    assert "hint: leave " in err and "or decorate run() with @rawhttp" in err


def test_a_rawhttp_run_takes_every_listed_method(example, tmp_path: Path) -> None:  # noqa: ANN001
    repo = example("diabetes-http")
    shutil.copyfile(FIXTURES / "styles" / "rawhttp.py", repo / "score.py")
    config = repo / "modelfunc.yaml"
    config.write_text(config.read_text().replace("methods: [GET, POST]", "methods: [GET, POST, PUT, PATCH, DELETE]"))
    result = package(repo, tmp_path / "out")
    assert result.returncode == 0, result.stderr


# ================================================================== (18) where serve listens

# (id, how, what the user sees)
LISTEN_CASES = [
    ("serve-host-ipv6-loopback", "ipv6", "Host running at http://[::1]:<port>"),
    ("serve-host-ipv6-where-it-is-not-configured", "netns",
     "error: cannot listen on [::1]:0: ::1 is not an address of this machine (an IPv6 address: is IPv6 enabled, and "
     "is the address on one of its interfaces?) … hint: pass --host with an address of this machine"),
    ("serve-port-in-use", "busy",
     "error: cannot listen on 127.0.0.1:<port>: the port is in use (another program, or another modelfunc serve, "
     "listens there) … hint: pass another --port (0 picks a free one)"),
]


@pytest.mark.parametrize(("how", "message"), [c[1:] for c in LISTEN_CASES], ids=ids(LISTEN_CASES))
def test_serve_says_why_it_cannot_listen(rendered_app: Path, tmp_path: Path, how: str, message: str) -> None:
    if how == "ipv6":
        pool = Hosts(tmp_path)
        try:
            host = pool.start(rendered_app, extra=("--host", "::1"))
            assert re.fullmatch(r"http://\[::1\]:\d+", host.url), host.url
            assert f"Host running at {host.url}" in host.output()
            resp = httpx.post(f"{host.url}/api/score", content=(EXAMPLES / "diabetes-http" / "samples" / "input.json")
                              .read_bytes(), headers={"content-type": "application/json"}, timeout=30)
            assert resp.status_code == 200, resp.text
        finally:
            pool.stop_all()
        return
    cmd = [sys.executable, "-m", "modelfunc", "serve", str(rendered_app), "--no-azurite"]
    with contextlib.ExitStack() as stack:
        if how == "netns":  # a network namespace of its own: its loopback is down, so ::1 is nowhere
            if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
                pytest.skip("cannot create a network namespace (unshare --net) here")
            cmd = ["unshare", "--net", *cmd, "--host", "::1", "--port", "0"]
            expected = message
        else:
            busy = stack.enter_context(socket.socket())
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            cmd += ["--port", str(port)]
            expected = message.replace("<port>", str(port))
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    err = clean_error(result, code=1)
    first, _, hint = expected.partition(" … ")
    assert first in err and hint in err, err
    assert "pass another --port" not in err or how == "busy", err


# ================================================================== (15) the local host's limits

LIMIT = 1024 * 1024
HEADERS_TIMEOUT = 2
LIMIT_SETTINGS = ("--setting", f"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT={LIMIT}",
                  "--setting", f"MODELFUNC_REQUEST_HEADERS_TIMEOUT={HEADERS_TIMEOUT}")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Two hosts of the HTTP example: one with a 1 MiB body limit and a 2 s header timeout, one with the defaults."""
    tmp = tmp_path_factory.mktemp("limits")
    pool = Hosts(tmp)
    try:
        yield {"limited": pool.start(copy_example("diabetes-http", tmp), extra=LIMIT_SETTINGS),
               "default": pool.start(copy_example("diabetes-http", tmp))}
    finally:
        pool.stop_all()


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


def read_response(sock: socket.socket, timeout: float) -> tuple[int | None, bytes]:
    """(status, body) of the answer on ``sock`` within ``timeout``; (None, b"") when none came (or it was only a
    close without an answer)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head = data.partition(b"\r\n\r\n")[0]
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        while length and len(data) - len(head) - 4 < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    status = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(status.group(1)) if status else None), data.partition(b"\r\n\r\n")[2]


def closed_within(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def rss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


REQUEST_HEAD = "POST /api/score HTTP/1.1\r\nHost: modelfunc\r\nContent-Type: application/json\r\n"
# (id, host, what the client does, status, the start of the message)
LIMIT_CASES = [
    ("body-over-the-limit-by-content-length", "limited", "content-length", 413,
     f"The request body is larger than the limit of {LIMIT} bytes (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, 100 MB by "
     "default as on the Functions host)"),
    ("body-over-the-default-limit-of-100-mb", "default", "content-length", 413,
     "The request body is larger than the limit of 104857600 bytes"),
    ("chunked-body-over-the-limit", "limited", "chunked", 413, f"The request body is larger than the limit of {LIMIT}"),
    ("headers-dribbled-a-byte-at-a-time", "limited", "dribble-headers", 408,
     f"The request headers did not arrive within {HEADERS_TIMEOUT} s"),
    ("connection-that-sends-nothing", "limited", "silent", 408,
     f"The request headers did not arrive within {HEADERS_TIMEOUT} s"),
    ("body-dribbled-a-byte-a-second", "limited", "dribble-body", 408,
     "The request body arrived too slowly: less than 240 bytes per second after 5 s"),
    ("headers-larger-than-64-kib", "limited", "big-headers", 431,
     "The request line and headers are larger than 65536 bytes"),
]


@pytest.mark.parametrize(("which", "client", "status", "message"), [c[1:] for c in LIMIT_CASES], ids=ids(LIMIT_CASES))
def test_the_local_host_bounds_what_one_client_can_take(limited, which: str, client: str, status: int,
                                                        message: str) -> None:  # noqa: ANN001
    """The Functions host takes at most 100 MB per request ("Max request size", functions-scale#service-limits;
    FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, functions-app-settings#functions_request_body_size_limit) and Kestrel, its
    server, times out slow headers (RequestHeadersTimeout, 30 s) and slow bodies (MinRequestBodyDataRate, 240 B/s
    after 5 s). A real socket plays the client; the host is the real `modelfunc serve`."""
    host = limited[which]
    limit = LIMIT if which == "limited" else 104_857_600
    before = rss(host.process.pid)
    started = time.monotonic()
    with socket.create_connection(_address(host.url), timeout=10) as sock:
        if client == "content-length":  # only the headers: the answer must not wait for a body
            sock.sendall(f"{REQUEST_HEAD}Content-Length: {limit + 1}\r\n\r\n".encode())
            got, body = read_response(sock, 5)
        elif client == "chunked":  # 64 KiB chunks, up to 32 MiB, until the host answers
            sock.sendall(f"{REQUEST_HEAD}Transfer-Encoding: chunked\r\n\r\n".encode())
            frame = b"10000\r\n" + b"7" * 65536 + b"\r\n"
            sent = 0
            while sent < 32 * 1024 * 1024:
                if select.select([sock], [], [], 0)[0]:
                    break
                try:
                    sock.settimeout(3)
                    sock.sendall(frame)
                except (TimeoutError, BrokenPipeError, ConnectionResetError):
                    break
                sent += 65536
            got, body = read_response(sock, 10)
            assert sent < 24 * 1024 * 1024, f"the host read {sent} bytes past a limit of {LIMIT}"
        elif client == "dribble-headers":
            sock.sendall(b"POST /api/score HTTP/1.1\r\n")
            got, body = None, b""
            for byte in b"X-Slow: " + b"a" * 100:
                if select.select([sock], [], [], 0.25)[0]:
                    break
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
            got, body = read_response(sock, HEADERS_TIMEOUT + 3)
        elif client == "silent":
            got, body = read_response(sock, HEADERS_TIMEOUT + 3)
        elif client == "dribble-body":
            sock.sendall(f"{REQUEST_HEAD}Content-Length: 1000\r\n\r\n".encode())
            for _ in range(20):
                if select.select([sock], [], [], 1)[0]:
                    break
                try:
                    sock.sendall(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    break
            got, body = read_response(sock, 3)
        else:  # big headers, sent at once
            sock.sendall(REQUEST_HEAD.encode() + b"".join(b"X-Big-%d: %s\r\n" % (i, b"b" * 1000) for i in range(100)))
            got, body = read_response(sock, 5)
        elapsed = time.monotonic() - started
        assert got == status, (got, body)
        assert json.loads(body)["message"].startswith(message), body
        assert closed_within(sock, 3), "the connection stayed open after the refusal"
    assert elapsed < {"dribble-body": 12, "dribble-headers": HEADERS_TIMEOUT + 3, "silent": HEADERS_TIMEOUT + 3}.get(
        client, 5), elapsed
    assert rss(host.process.pid) - before < 32 * 1024 * 1024, "the host grew by more than 32 MiB"
    # and the host still answers
    resp = httpx.post(f"{host.url}/api/score", content=(EXAMPLES / "diabetes-http" / "samples" / "input.json")
                      .read_bytes(), headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 200, resp.text


def test_a_body_at_the_limit_is_served(limited) -> None:  # noqa: ANN001
    body = b'{"data": [' + b" " * (LIMIT - 40) + b"[1,2,3,4,5,6,7,8,9,10]]}"
    assert len(body) <= LIMIT
    resp = httpx.post(f"{limited['limited'].url}/api/score", content=body, headers={"content-type": "application/json"},
                      timeout=30)
    assert resp.status_code == 200, resp.text


# ================================================================== the admin API when bound elsewhere

ELSEWHERE = "127.0.0.2"  # a loopback alias: "elsewhere" by design (only 127.0.0.1, ::1 and localhost are local-only)
# (id, what the request carries, status)
ADMIN_CASES = [
    ("admin-bound-elsewhere-without-the-key", "none", 401),
    ("admin-bound-elsewhere-with-a-wrong-key", "wrong", 401),
]
ADMIN_MESSAGE = "The admin API needs the host's master key: send it in the x-functions-key header or the code query " \
                "parameter"


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("elsewhere")
    pool = Hosts(tmp)
    chosen = "chosen-" + uuid.uuid4().hex
    try:
        generated = pool.start(copy_example("diabetes-http", tmp), extra=("--host", ELSEWHERE))
        configured = pool.start(copy_example("diabetes-http", tmp),
                                extra=("--host", ELSEWHERE, "--setting", f"MODELFUNC_MASTER_KEY={chosen}"))
        local = pool.start(copy_example("diabetes-http", tmp))
        yield {"generated": generated, "configured": configured, "local": local, "chosen": chosen}
    finally:
        pool.stop_all()


def _printed_key(output: str) -> str:
    match = re.search(r"^Admin API \(/admin/\.\.\.\): needs the master key, as the host listens on 127\.0\.0\.2 "
                      r"\(x-functions-key header or \?code=\); generated for this run \(set MODELFUNC_MASTER_KEY to "
                      r"choose it\): (\S+)$", output, re.M)
    assert match, output
    return match.group(1)


@pytest.mark.parametrize(("carries", "status"), [c[1:] for c in ADMIN_CASES], ids=ids(ADMIN_CASES))
def test_the_admin_api_needs_the_master_key_when_bound_elsewhere(elsewhere, carries: str, status: int) -> None:  # noqa: ANN001
    """The Functions host's admin API takes the master key (x-functions-key header, or `code` in the query:
    https://learn.microsoft.com/azure/azure-functions/functions-bindings-http-webhook-trigger#obtaining-keys and
    https://learn.microsoft.com/azure/azure-functions/functions-manually-run-non-http). Bound to 127.0.0.1/::1 the
    local host keeps it open (as Core Tools does); bound anywhere else, it needs the key."""
    host = elsewhere["generated"]
    assert host.url.startswith(f"http://{ELSEWHERE}:")
    key = _printed_key(host.output())
    assert host.output().count(key) == 1, "the generated key is printed once"
    headers = {"x-functions-key": "not-" + key} if carries == "wrong" else {}
    for path in ("/admin/host/status", "/admin/functions"):
        resp = httpx.get(f"{host.url}{path}", headers=headers, timeout=10)
        assert resp.status_code == status and resp.json()["message"].startswith(ADMIN_MESSAGE), resp.text
    resp = httpx.post(f"{host.url}/admin/functions/score", json={"input": "{}"}, headers=headers, timeout=10)
    assert resp.status_code == status
    # with the key, in either place, it answers
    assert httpx.get(f"{host.url}/admin/host/status", headers={"x-functions-key": key}, timeout=10).status_code == 200
    assert httpx.get(f"{host.url}/admin/functions", params={"code": key}, timeout=10).status_code == 200
    # the function itself is not the admin API
    resp = httpx.post(f"{host.url}/api/score", content=(EXAMPLES / "diabetes-http" / "samples" / "input.json")
                      .read_bytes(), headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 200, resp.text


def test_the_master_key_from_a_setting_is_required_and_never_printed(elsewhere) -> None:  # noqa: ANN001
    host, chosen = elsewhere["configured"], elsewhere["chosen"]
    assert chosen not in host.output()
    assert "Admin API (/admin/...): needs the master key in app setting MODELFUNC_MASTER_KEY" in host.output()
    assert httpx.get(f"{host.url}/admin/host/status", timeout=10).status_code == 401
    keyed = httpx.get(f"{host.url}/admin/host/status", headers={"x-functions-key": chosen}, timeout=10)
    assert keyed.status_code == 200


def test_the_admin_api_stays_open_on_127_0_0_1(elsewhere) -> None:  # noqa: ANN001
    host = elsewhere["local"]
    assert "Admin API (/admin/...): open, as the host listens on 127.0.0.1 (this machine) only" in host.output()
    assert httpx.get(f"{host.url}/admin/host/status", timeout=10).status_code == 200


# ================================================================== werkzeug's own limit, through the runtime

MANY_PARTS = b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(1100)) \
    + b"--b--\r\n"
# (id, body, content type, status, the start of the message)
FORM_LIMIT = [("multipart-body-of-more-than-1000-parts", MANY_PARTS, "multipart/form-data; boundary=b", 413,
               "The data value transmitted exceeds the capacity limit")]


@pytest.mark.parametrize(("body", "ctype", "status", "message"), [c[1:] for c in FORM_LIMIT], ids=ids(FORM_LIMIT))
def test_a_form_body_werkzeug_refuses_is_its_status_not_a_crash(tmp_path: Path, body: bytes, ctype: str, status: int,
                                                                message: str) -> None:
    """An undecorated run() gets flask's request.data, for which werkzeug parses a form body; it refuses a multipart
    body of more than 1000 parts (Request.max_form_parts) with a RequestEntityTooLarge of its own, which escaped
    the runtime (the host answered 500). Flask, and so azmlinfsrv, answers it 413."""
    entry = _entry(tmp_path, "json")
    outcome = entry.invoke(body, headers={"content-type": ctype, "content-length": str(len(body))})
    assert outcome.status == status, outcome.body
    assert json.loads(outcome.body)["message"].startswith(message), outcome.body


# ================================================================== a property-based layer over request bodies

FUZZ_SCRIPTS = {
    # run() itself never fails on any input, so that a 500 could only come from the runtime
    "json": """
        def init():
            pass

        def run(data):
            return {"chars": len(data)}
    """,
    "schema": """
        from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
        from inference_schema.schema_decorators import input_schema

        def init():
            pass

        @input_schema("data", StandardPythonParameterType({"a": [1.0], "b": "text"}))
        def run(data):
            return {"type": type(data).__name__}
    """,
    "rawhttp": """
        from azureml.contrib.services.aml_request import rawhttp
        from azureml.contrib.services.aml_response import AMLResponse

        def init():
            pass

        @rawhttp
        def run(request):
            body = request.get_data()
            parsed = request.get_json(silent=True)
            return AMLResponse({"bytes": len(body), "json": parsed is not None, "method": request.method}, 200,
                               json_str=True)
    """,
}
FUZZ_BUDGET_S = 5.0  # per style; three styles stay within the 20 s the layer may take
FUZZ_BATCH = 50  # examples per hypothesis run; runs repeat until the budget is spent
FUZZ_ROWS = [(f"fuzz-{style}-run", style) for style in FUZZ_SCRIPTS]


def _entry(tmp_path: Path, style: str):  # noqa: ANN202
    from modelfunc.runtime.modelfunc_runtime import EntryScript

    script = tmp_path / f"fuzz_{style}" / "score.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(textwrap.dedent(FUZZ_SCRIPTS[style]))
    entry = EntryScript(script, model_dir=script.parent)
    entry.wait_ready(timeout=30)
    assert entry.style == style
    return entry


class _Blob:
    def __init__(self, data: bytes, ctype: str | None) -> None:
        self.data, self.name = data, "in/fuzz.json"
        self.blob_properties = {"ContentType": ctype} if ctype else {}

    def read(self) -> bytes:
        return self.data


class _Out:
    def __init__(self) -> None:
        self.value: bytes | None = None

    def set(self, value: bytes) -> None:
        self.value = value


@pytest.mark.parametrize("style", [c[1] for c in FUZZ_ROWS], ids=ids(FUZZ_ROWS))
def test_fuzz_request_bodies_through_the_runtime(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 style: str) -> None:
    """Random bytes, JSON-ish documents (deeply nested ones too), text in several encodings, forms and multipart,
    with random content types, methods, query strings and triggers, through EntryScript.invoke (and a blob's
    handle_blob): never an exception out of the runtime, never a 5xx for anything in the request."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    entry = _entry(tmp_path, style)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12)
    encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"])
    deep = st.integers(1, 6000).map(lambda n: b"[" * n + b"]" * n) | \
        st.integers(1, 3000).map(lambda n: b'{"data":' * n + b"1" + b"}" * n) | \
        st.integers(1, 6000).map(lambda n: b'{"data": ' + b"[" * n + b"]" * n + b"}")
    bodies = st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        json_values.map(lambda v: json.dumps({"data": v}).encode()),
        st.tuples(json_values, encodings).map(lambda p: json.dumps({"data": p[0]}, ensure_ascii=False)
                                              .encode(p[1], "replace")),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        deep,
        st.binary(max_size=200).map(lambda b: b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n"
                                              b"\r\n" + b + b"\r\n--b--\r\n"),
        st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3).map(
            lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")),
    )
    header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)
    ctypes = st.one_of(st.sampled_from([
        None, "application/json", "application/json; charset=utf-16", "application/problem+json", "text/plain",
        "text/plain; charset=latin-1", "application/octet-stream", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=b", "multipart/form-data", "text/csv", ""]), header_text)
    methods = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    queries = st.dictionaries(st.text(max_size=6), st.lists(
        st.text(max_size=20) | st.integers(1, 3000).map(lambda n: "[" * n + "]" * n), min_size=1, max_size=2),
        max_size=3)
    kinds = st.sampled_from(["http", "http", "blob", "message"])
    tried: Counter[int] = Counter()
    started = time.monotonic()

    # Batches of examples until the time budget is spent (hypothesis has no time limit of its own); a failing example
    # is shrunk and reported by the batch that found it.
    @settings(max_examples=FUZZ_BATCH, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies, ctype=ctypes, method=methods, query=queries, kind=kinds)
    def one(body: bytes, ctype: str | None, method: str, query: dict[str, list[str]], kind: str) -> None:
        headers = {"content-length": str(len(body))}
        if ctype is not None:
            headers["content-type"] = ctype
        if kind == "blob":
            out, err = _Out(), _Out()
            outcome = entry.handle_blob(_Blob(body, ctype), out, err)
            assert (out.value is None) != (err.value is None), "a blob gets exactly one of an answer or a record"
        else:
            outcome = entry.invoke(body, method=method if kind == "http" else "POST", headers=headers, query=query,
                                   kind=kind)
        tried[outcome.status] += 1
        assert outcome.status < 500, (outcome.status, outcome.body[:300])
        if outcome.status >= 400:
            assert json.loads(outcome.body)["message"], outcome.body

    while time.monotonic() - started < FUZZ_BUDGET_S:
        one()
    elapsed = time.monotonic() - started
    examples = sum(tried.values())
    with capsys.disabled():
        print(f"\nfuzz [{style} run()]: {examples} examples tried in {elapsed:.1f} s; statuses "
              + ", ".join(f"{status}: {n}" for status, n in sorted(tried.items())))
    assert examples >= FUZZ_BATCH, f"only {examples} examples in the time budget"
    assert elapsed < FUZZ_BUDGET_S + 2


# ================================================================== the rows of docs/bad-inputs.md


def _rows() -> list[tuple[str, str, str, str, str]]:
    rows = []
    test = "test_model_files_come_only_from_inside_the_repo"
    for cid, name, target, message in MODEL_ENTRIES:
        what = {FIFO: f"model/{name} is a named pipe", SOCKET: f"model/{name} is a socket"}.get(
            target, f"model/{name} is a symbolic link to {target}")
        hint = "" if target in (FIFO, SOCKET) else " … hint: remove the link" if "loop" in cid else f" … {MODEL_HINT}"
        rows.append(("repo files", cid, what, f"error: <repo>/model/{name}: {message}{hint}", node(test, cid)))
    test = "test_a_named_pipe_beside_score_py_never_hangs_package"
    for cid, fifo, imports, message in FIFO_CASES:
        what = f"{fifo} is a named pipe (mkfifo){' and score.py imports ' + imports.split()[1] if imports else ''}"
        seen = message if message.startswith("error: ") else f"package finishes; it prints: {message.strip()}"
        rows.append(("score.py", cid, what, seen, node(test, cid)))
    test = "test_an_import_that_never_returns_stops_serve_saying_where"
    for cid, stuck, shown in IMPORT_HANGS:
        rows.append(("serve start-up", cid, f"score.py runs {stuck.splitlines()[0]} at import (serve with "
                                            "MODELFUNC_IMPORT_TIMEOUT=3)",
                     f"exit 1: {IMPORT_HANG_MESSAGE} … score.py, line 4 … {shown.splitlines()[0]}", node(test, cid)))
    for cid, message in INIT_HANGS:
        rows.append(("serve start-up", cid, "init() never returns (wait_ready with a 1 s timeout; 600 s by default)",
                     message + " … score.py, line 5, in init",
                     node("test_an_init_that_never_returns_says_where_it_is", cid)))
    for cid, score, _body, status, message in DEEP_HTTP:
        style = "an @input_schema run()" if score is None else "an undecorated run() that calls json.loads"
        rows.append(("request bodies", cid, f"{{\"data\": [[[…]]]}} nested {DEEP:,} deep as application/json to "
                                            f"{style}", f"HTTP {status}: {message}…",
                     node("test_deeply_nested_json_is_a_400_over_http", cid)))
    for cid, _raw, status, message in DEEP_BLOBS:
        rows.append(("blobs", cid, f"[[[…]]] nested {DEEP:,} deep uploaded as input/….json",
                     f"error record, status {status}: {message}…",
                     node("test_deeply_nested_json_blob_gets_an_error_record", cid)))
    for cid, option, value, message in BAD_REFERENCES:
        rows.append(("CLI arguments", cid, f"modelfunc package {{repo}} {option} {value!r}", f"exit 2: {message}",
                     node("test_an_image_reference_is_one_reference", cid)))
    for cid, when, message in STAGING_CASES:
        what = {"before-the-swap": "an earlier package killed (SIGKILL) while writing its staging folder",
                "between-the-renames": "an earlier package killed (SIGKILL) between moving the old output away and "
                                       "the new one in",
                "alive": "another package writing the same output right now"}[when]
        rows.append(("build output", cid, what, message,
                     node("test_staging_folders_of_a_killed_package_are_removed_by_the_next", cid)))
    for cid, fault, reason in CACHE_FAULTS:
        what = {"empty": "the cached layer's .sha256 file is empty",
                "none": "the cached layer's .sha256 file holds None",
                "tar": "the cached layer's .tar changed after its digest was recorded",
                "missing": "the cached layer's .sha256 file is missing"}[fault]
        rows.append(("dependency cache", cid, what,
                     CACHE_MESSAGE.replace("<reason>", reason),
                     node("test_a_cached_layer_that_does_not_match_its_digest_is_rebuilt", cid)))
    for cid, *expect in NO_SPACE:
        rows.append(("build output", cid, "--out on a 1 MiB tmpfs (the disk fills up while packaging)",
                     "exit 2: " + " … ".join(expect),
                     node("test_a_full_disk_is_a_clear_error_and_leaves_nothing", cid)))
    for cid, which, message in READ_ONLY_CACHES:
        what = "XDG_CACHE_HOME on a read-only file system" if which == "layers" else "--pip-cache on a read-only " \
                                                                                      "file system"
        rows.append(("dependency cache", cid, what, f"package finishes; it prints: {message}…",
                     node("test_a_read_only_cache_costs_only_the_cache", cid)))
    for cid, how, message in OUT_CASES:
        what = {"mount": "--out <tmp>/mnt, a mount point", "dot-in-previous": "--out . run inside an earlier output",
                "dot-in-empty": "--out . run in an empty folder"}[how]
        rows.append(("CLI arguments", cid, what, f"exit 2: {message}…",
                     node("test_out_that_cannot_be_replaced_whole_is_a_clear_error", cid)))
    for cid, content, message in BAD_LOCAL_SETTINGS:
        shown = "a folder" if content is None else repr(content[:40])[2:-1] + ("…" if len(content) > 40 else "")
        rows.append(("local.settings.json", cid, f"modelfunc serve <app> with local.settings.json: {shown}",
                     f"exit 1: error: <app>/local.settings.json{message}",
                     node("test_a_bad_local_settings_json_is_a_clear_error", cid)))
    for cid, score, methods, message in BAD_METHODS:
        style = "@input_schema" if score is None else "undecorated"
        rows.append(("modelfunc.yaml", cid, f"methods: {methods} for an {style} run()", f"exit 2: {message}…",
                     node("test_methods_run_cannot_take_are_refused_at_package_time", cid)))
    for cid, how, message in LISTEN_CASES:
        what = {"ipv6": "modelfunc serve --host ::1", "netns": "modelfunc serve --host ::1 where ::1 is not configured "
                                                               "(a network namespace of its own)",
                "busy": "modelfunc serve --port <a port another program listens on>"}[how]
        rows.append(("CLI arguments", cid, what, f"it serves: {message}" if how == "ipv6" else f"exit 1: {message}",
                     node("test_serve_says_why_it_cannot_listen", cid)))
    for cid, which, client, status, message in LIMIT_CASES:
        setting = f"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT={LIMIT}" if which == "limited" else "the default limit"
        what = {"content-length": f"Content-Length: {LIMIT + 1 if which == 'limited' else 104857601} (with "
                                  f"{setting}), no body yet",
                "chunked": f"a chunked body past FUNCTIONS_REQUEST_BODY_SIZE_LIMIT={LIMIT}",
                "dribble-headers": "request headers sent a byte every 0.25 s (MODELFUNC_REQUEST_HEADERS_TIMEOUT=2)",
                "silent": "a connection that sends nothing (MODELFUNC_REQUEST_HEADERS_TIMEOUT=2)",
                "dribble-body": "a body of 1000 bytes sent a byte a second",
                "big-headers": "100 headers of 1000 bytes each"}[client]
        rows.append(("local host connections", cid, what, f"HTTP {status}, connection closed: {message}…",
                     node("test_the_local_host_bounds_what_one_client_can_take", cid)))
    for cid, carries, status in ADMIN_CASES:
        what = f"GET /admin/host/status {'without a key' if carries == 'none' else 'with a wrong x-functions-key'} " \
               f"from a host serving with --host {ELSEWHERE}"
        rows.append(("admin API", cid, what, f"HTTP {status}: {ADMIN_MESSAGE}…",
                     node("test_the_admin_api_needs_the_master_key_when_bound_elsewhere", cid)))
    for cid, _body, ctype, status, message in FORM_LIMIT:
        rows.append(("request bodies", cid, f"1100 fields as {ctype} to an undecorated run()",
                     f"HTTP {status}: {message}…", node("test_a_form_body_werkzeug_refuses_is_its_status_not_a_crash",
                                                        cid)))
    for cid, style in FUZZ_ROWS:
        rows.append(("request bodies", cid, f"random bodies, content types, methods, queries and triggers to a {style} "
                                            "run() (hypothesis, 5 s)",
                     "never a 5xx nor an exception: 200, or a 4xx with a message",
                     node("test_fuzz_request_bodies_through_the_runtime", cid)))
    return rows


ROWS: list[tuple[str, str, str, str, str]] = _rows()


def test_every_case_is_one_row() -> None:
    keys = [(area, cid) for area, cid, *_ in ROWS]
    assert len(set(keys)) == len(keys)
    for _area, cid, _what, seen, test in ROWS:
        assert test.endswith(f"[{cid}]") and seen


def test_serve_max_body_size_sets_the_limit(example, serve) -> None:  # noqa: ANN001
    """`modelfunc serve --max-body-size` is the same limit as the FUNCTIONS_REQUEST_BODY_SIZE_LIMIT setting."""
    import httpx

    host = serve(example("diabetes-http"), extra=("--max-body-size", "1000"))
    resp = httpx.post(f"{host.url}/api/score", content=b"x" * 1001, headers={"content-type": "application/json"},
                      timeout=30)
    assert resp.status_code == 413, resp.text
    ok = httpx.post(f"{host.url}/api/score", content=b'{"data": [[0,0,0,0,0,0,0,0,0,0]]}', timeout=30,
                    headers={"content-type": "application/json", "x-functions-key": "unused-locally"})
    assert ok.status_code == 200, ok.text


def test_a_generated_master_key_is_masked_before_it_is_printed_in_a_workflow(monkeypatch, capfd,
                                                                           tmp_path: Path) -> None:  # noqa: ANN001
    """In GitHub Actions the banner would print the generated key into the log: the runner is told to mask it
    first (and modelfunc's redactor knows it)."""
    from modelfunc.appgen import render
    from modelfunc.config import load_project
    from modelfunc.localhost import load_app
    from modelfunc.localhost.server import HostServer
    from modelfunc.redact import redact

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    app = render(load_project(copy_example("diabetes-http", tmp_path)), tmp_path / "out").app_dir
    server = HostServer(load_app(app), host="127.0.0.2", port=0)
    assert server.master_key_source == "generated"
    assert f"::add-mask::{server.master_key}" in capfd.readouterr().out
    assert server.master_key not in redact(f"key {server.master_key}")
