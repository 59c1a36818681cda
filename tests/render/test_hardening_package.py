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
from support.blobs import error_record_of
from support.cases.hardening_package import (
    ADMIN_CASES,
    ADMIN_MESSAGE,
    BAD_LOCAL_SETTINGS,
    BAD_METHODS,
    BAD_REFERENCES,
    CACHE_FAULTS,
    CACHE_MESSAGE,
    DEEP_BLOBS,
    DEEP_HTTP,
    ELSEWHERE,
    FIFO,
    FIFO_CASES,
    FORM_LIMIT,
    FUZZ_ROWS,
    FUZZ_SCRIPTS,
    HEADERS_TIMEOUT,
    IMPORT_HANG_MESSAGE,
    IMPORT_HANGS,
    INIT_HANGS,
    LIMIT,
    LIMIT_CASES,
    LISTEN_CASES,
    MODEL_ENTRIES,
    MODEL_HINT,
    NO_SPACE,
    OUT_CASES,
    READ_ONLY_CACHES,
    ROWS,
    SOCKET,
    STAGING_CASES,
)
from support.core import EXAMPLES, FIXTURES, Hosts, copy_example, run_modelfunc

SECRET_TEXT = "root:TOPSECRET-13-a8f3:19000:0:99999:7:::\n"


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
    record, host, _, _ = error_record_of(example, serve, azurite, raw, "deep")
    assert record["status"] == status and record["response"]["message"].startswith(message), record
    assert host.status()["blob_listeners"]["score_blob"]["poisoned"] == 0


# ================================================================== (6) --base-image and --tag


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


@pytest.mark.xdist_group("primed_cache")  # one worker makes the module-scoped primed_cache once
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


@pytest.mark.parametrize("expect", [c[1:] for c in NO_SPACE], ids=ids(NO_SPACE))
def test_a_full_disk_is_a_clear_error_and_leaves_nothing(example, tmp_path: Path, expect: tuple[str, ...]) -> None:  # noqa: ANN001
    with mounted_tmpfs(tmp_path / "full", "size=1m") as full:
        out = full / "out"
        err = clean_error(package(example("diabetes-http"), out, timeout=120))
        for fragment in expect:
            assert fragment.replace("<tmp>", str(tmp_path)) in err, err
        assert list(full.iterdir()) == [], "the failed run left files on the full disk"


@pytest.mark.xdist_group("primed_cache")  # one worker makes the module-scoped primed_cache once
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


@pytest.mark.xdist_group("limited")  # one worker makes the module-scoped limited once
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


@pytest.mark.xdist_group("limited")  # one worker makes the module-scoped limited once
def test_a_body_at_the_limit_is_served(limited) -> None:  # noqa: ANN001
    body = b'{"data": [' + b" " * (LIMIT - 40) + b"[1,2,3,4,5,6,7,8,9,10]]}"
    assert len(body) <= LIMIT
    resp = httpx.post(f"{limited['limited'].url}/api/score", content=body, headers={"content-type": "application/json"},
                      timeout=30)
    assert resp.status_code == 200, resp.text


# ================================================================== the admin API when bound elsewhere


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


@pytest.mark.xdist_group("elsewhere")  # one worker makes the module-scoped elsewhere once
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


@pytest.mark.xdist_group("elsewhere")  # one worker makes the module-scoped elsewhere once
def test_the_master_key_from_a_setting_is_required_and_never_printed(elsewhere) -> None:  # noqa: ANN001
    host, chosen = elsewhere["configured"], elsewhere["chosen"]
    assert chosen not in host.output()
    assert "Admin API (/admin/...): needs the master key in app setting MODELFUNC_MASTER_KEY" in host.output()
    assert httpx.get(f"{host.url}/admin/host/status", timeout=10).status_code == 401
    keyed = httpx.get(f"{host.url}/admin/host/status", headers={"x-functions-key": chosen}, timeout=10)
    assert keyed.status_code == 200


@pytest.mark.xdist_group("elsewhere")  # one worker makes the module-scoped elsewhere once
def test_the_admin_api_stays_open_on_127_0_0_1(elsewhere) -> None:  # noqa: ANN001
    host = elsewhere["local"]
    assert "Admin API (/admin/...): open, as the host listens on 127.0.0.1 (this machine) only" in host.output()
    assert httpx.get(f"{host.url}/admin/host/status", timeout=10).status_code == 200


# ================================================================== werkzeug's own limit, through the runtime


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

FUZZ_BUDGET_S = 5.0  # per style; three styles stay within the 20 s the layer may take
FUZZ_BATCH = 50  # examples per hypothesis run; runs repeat until the budget is spent


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


def test_a_generated_master_key_is_masked_before_it_is_printed_in_a_workflow(monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    """In GitHub Actions the host's banner would print the generated key into the log: `modelfunc serve` chooses
    the key and tells the runner to mask it (::add-mask::, on stdout) before it starts the host, which prints it."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pool = Hosts(tmp_path)
    try:
        host = pool.start(copy_example("diabetes-http", tmp_path), extra=("--host", ELSEWHERE))
        output = host.output()
        key = _printed_key(output)
        assert output.count(f"::add-mask::{key}\n") == 1, output
        assert output.index(f"::add-mask::{key}") < output.index(f"choose it): {key}"), "masked after it was printed"
        assert httpx.get(f"{host.url}/admin/host/status", headers={"x-functions-key": key}, timeout=10).status_code \
            == 200, "the key the host was given is the one it printed"
    finally:
        pool.stop_all()
