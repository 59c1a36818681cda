"""Azurite without a manual step: as installed from a wheel (no checkout's node_modules, no azurite-blob on PATH),
modelfunc installs the Azurite its package-lock.json pins into the per-user cache with the real npm and registry,
once, under a lock; a failing or interrupted npm leaves nothing behind; without Node.js one short error says what to
install."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from modelfunc import azurite
from modelfunc.azurite import Azurite
from modelfunc.errors import HostError
from support.core import ROOT

VERSION = azurite.azurite_version()
INSTALL_LINE = (f"==> install Azurite {VERSION} (the Azure Storage emulator, pinned by modelfunc's package-lock.json) "
                "into {target} with npm: first use only")
# The real install is made once for the module (concurrent_install): under pytest-xdist its tests go to one worker.
pytestmark = pytest.mark.xdist_group("azurite_install")

# A child process that finds Azurite as a wheel install would (the checkout's node_modules out of sight).
FIND = "import modelfunc.azurite as a; a._checkout_candidates = lambda: []; print(a.find_executable())"


@pytest.fixture
def as_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """modelfunc as a wheel user has it: a fresh per-user cache, no MODELFUNC_AZURITE, no checkout, no azurite-blob
    on PATH (Node.js and npm stay). Yields where the pinned Azurite is to be installed (removed afterwards: it is
    close to 200 MB)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("MODELFUNC_AZURITE", raising=False)
    monkeypatch.setattr(azurite, "_checkout_candidates", lambda: [])
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "azurite-blob").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    monkeypatch.chdir(tmp_path)
    assert shutil.which("azurite-blob") is None
    yield cache / "modelfunc" / "azurite" / VERSION
    shutil.rmtree(cache, ignore_errors=True)


def installed(target: Path) -> list[str]:
    """What the cache's azurite directory holds (the lock file and complete installs only, when all went well)."""
    return sorted(p.name for p in target.parent.iterdir()) if target.parent.exists() else []


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    """A stand-in for a tool on PATH (fault injection: a tool that fails or hangs the way it can)."""
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    tool.chmod(0o755)


def test_the_pinned_project_is_the_checkouts_lock() -> None:
    project = azurite.node_project()
    assert {"package.json", "package-lock.json"} <= {p.name for p in project.iterdir()}
    assert json.loads((project / "package.json").read_text())["dependencies"]["azurite"] == VERSION == "3.35.0"


def test_an_installed_wheel_pins_azurite_with_its_packaged_copy(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "venv" / "lib" / "site-packages" / "modelfunc"
    package.mkdir(parents=True)
    monkeypatch.setattr(azurite, "__file__", str(package / "azurite.py"))
    with pytest.raises(HostError, match="is missing from .*modelfunc/node: this modelfunc installation is incomplete"):
        azurite.node_project()
    (package / "node").mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(ROOT / name, package / "node" / name)
    assert azurite.node_project() == package / "node"
    assert azurite.azurite_version(package / "node") == VERSION


@dataclass
class ConcurrentInstall:
    """Two runs that need Azurite at once, as installed from a wheel, on a new per-user cache (see the fixture)."""

    cache: Path  # XDG_CACHE_HOME
    target: Path  # where the pinned Azurite is installed
    outs: list[str]
    errs: list[str]
    codes: list[int | None]
    took: float


@pytest.fixture(scope="module")
def concurrent_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConcurrentInstall]:
    """One real npm install for the module's two tests of it (close to 200 MB, so removed afterwards): two child
    processes find Azurite as a wheel install would (a fresh per-user cache, no MODELFUNC_AZURITE, no checkout, no
    azurite-blob on PATH; Node.js and npm stay), both started while this test holds the install lock, so that both
    are seen waiting for it and then contend for real."""
    tmp = tmp_path_factory.mktemp("azurite-install")
    cache = tmp / "cache"
    target = cache / "modelfunc" / "azurite" / VERSION
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "azurite-blob").exists()]
    env = {k: v for k, v in os.environ.items() if k != "MODELFUNC_AZURITE"}
    env.update(XDG_CACHE_HOME=str(cache), PATH=os.pathsep.join(path))
    target.parent.mkdir(parents=True)
    logs = [tmp / f"run{i}.err" for i in range(2)]
    started = time.monotonic()
    with open(target.parent / ".lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        runs = []
        for log in logs:
            with log.open("wb") as stderr:
                runs.append(subprocess.Popen([sys.executable, "-c", FIND], stdout=subprocess.PIPE, stderr=stderr,
                                             stdin=subprocess.DEVNULL, text=True, env=env, cwd=tmp))
        deadline = time.monotonic() + 60
        while not all("==> wait for another modelfunc run" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            assert all(run.poll() is None for run in runs), [log.read_text() for log in logs]
            time.sleep(0.1)
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    outs = [run.communicate(timeout=280)[0].strip() for run in runs]
    yield ConcurrentInstall(cache, target, outs, [log.read_text() for log in logs], [run.returncode for run in runs],
                            time.monotonic() - started)
    shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.timeout(300)
def test_concurrent_runs_install_once(concurrent_install: ConcurrentInstall) -> None:
    run = concurrent_install
    assert run.codes == [0, 0], run.errs
    exe = run.target / "node_modules" / ".bin" / "azurite-blob"
    assert run.outs == [str(exe), str(exe)]
    assert sum(err.count("==> install Azurite") for err in run.errs) == 1, run.errs
    assert installed(run.target) == [".lock", VERSION]
    assert subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60).stdout.strip() == VERSION


@pytest.mark.timeout(300)
def test_first_need_installs_the_pinned_azurite_once(concurrent_install: ConcurrentInstall, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    """The run that installed said so and let npm's output through; what it left is the install alone, which the
    next need (here, in this process) finds and uses without installing again."""
    run = concurrent_install
    assert run.codes == [0, 0], run.errs
    [err] = [err for err in run.errs if "==> install Azurite" in err]
    exe = run.target / "node_modules" / ".bin" / "azurite-blob"
    assert exe.exists() and os.access(exe, os.X_OK)
    assert INSTALL_LINE.format(target=run.target) in err.splitlines()
    assert "added " in err  # npm's own output reaches the user
    assert installed(run.target) == [".lock", VERSION]  # no temporary directory left
    assert not (run.target / "node_modules" / "@actions").exists()  # the dev dependency is left out
    print(f"npm ci of Azurite {VERSION}, two runs waiting for it: {run.took:.1f} s", file=sys.stderr)

    monkeypatch.setenv("XDG_CACHE_HOME", str(run.cache))  # this process, as installed from a wheel, on that cache
    monkeypatch.delenv("MODELFUNC_AZURITE", raising=False)
    monkeypatch.setattr(azurite, "_checkout_candidates", lambda: [])
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                               if p and not (Path(p) / "azurite-blob").exists()))
    capfd.readouterr()
    before = run.target.stat()
    with Azurite(location=tmp_path / "data") as emulator:  # finds the cached install
        storage = BlobServiceClient.from_connection_string(azurite.connection_string(emulator.port))
        storage.create_container("made-by-the-cached-azurite")
        assert [c.name for c in storage.list_containers()] == ["made-by-the-cached-azurite"]
        assert emulator.queue_port is not None  # azurite-queue came with it
    assert azurite.find_executable() == str(exe)
    after = run.target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "==> install Azurite" not in capfd.readouterr().err


@pytest.mark.timeout(120)
def test_a_failing_npm_leaves_nothing_and_names_its_exit_code(as_installed: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    # What an earlier install killed with SIGKILL left behind is cleared by the next one.
    stale = as_installed.parent / f".{VERSION}.tmp-killed"
    (stale / "node_modules").mkdir(parents=True)
    fake_tool(tmp_path / "bin", "npm", """\
        mkdir -p node_modules/.bin && touch node_modules/half-installed
        for i in $(seq 30); do echo "npm http fetch GET https://npm-registry.invalid/package-$i"; done
        echo "npm error code ECONNREFUSED" >&2
        echo "npm error network request to https://npm-registry.invalid/azurite failed (fault injected)" >&2
        exit 7
        """)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(HostError) as caught:
        azurite.find_executable()
    error = caught.value
    assert "npm ci exited with code 7" in error.message
    assert "npm error network request to https://npm-registry.invalid/azurite failed (fault injected)" in error.message
    tail = error.message.splitlines()[1:]
    assert len(tail) == 20 and "package-13" in tail[0]  # the end of npm's output, not all of it
    assert f"npm install -g azurite@{VERSION}" in error.hint and "MODELFUNC_AZURITE" in error.hint
    assert "--connection-string" in error.hint
    assert "npm http fetch GET https://npm-registry.invalid/package-1\n" in capfd.readouterr().err  # streamed as it ran
    assert installed(as_installed) == [".lock"]


@pytest.mark.timeout(120)
def test_an_interrupted_install_leaves_nothing(as_installed: Path, tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "npm", """\
        mkdir -p node_modules/.bin && touch node_modules/half-installed
        echo "npm http fetch GET https://npm-registry.invalid/azurite"
        exec sleep 120
        """)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    # Ctrl-C raises KeyboardInterrupt, as in a terminal, even if the suite was started with SIGINT ignored (`cmd &`
    # in a script does that, and a child Python keeps an ignored SIGINT ignored)
    ctrl_c = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    run = subprocess.Popen([sys.executable, "-c", ctrl_c + FIND], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(as_installed.parent.glob(f".{VERSION}.tmp-*/node_modules/half-installed")):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.1)
        run.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "KeyboardInterrupt" in err
    assert installed(as_installed) == [".lock"]


@pytest.mark.parametrize("tools", [(), ("node",)], ids=["no-node", "no-npm"])
def test_without_node_one_line_says_what_to_install(as_installed: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, tools: tuple[str, ...]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(HostError) as caught:
        azurite.find_executable()
    error = caught.value
    missing = "which are not on PATH" if not tools else "and npm is not on PATH"
    assert error.message == (
        f"Azurite (the Azure Storage emulator the local blob trigger runs on) needs Node.js and npm, {missing}: "
        "install Node.js 18 or newer (https://nodejs.org/ or your package manager, e.g. `apt-get install nodejs npm`) "
        f"and run again; modelfunc then installs Azurite {VERSION} itself")
    assert "--connection-string" in error.hint
    assert len(str(error).splitlines()) == 2  # what the CLI prints after "error: ": the line and its hint
    assert not (tmp_path / "cache").exists()  # nothing written to the cache
