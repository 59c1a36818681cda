"""The app's own environment (appenv.py): one lock, the app run from it locally and in the image, apart from
modelfunc's own Python.

References, not our own belief:
- pip itself resolves and checks (``pip install --dry-run --report``, ``--require-hashes``, ``pip check``).
- The app's packages come first in the host's process, as the Functions Python worker loads them with
  ``PYTHON_ISOLATE_WORKER_DEPENDENCIES=1``:
  https://learn.microsoft.com/azure/azure-functions/functions-app-settings#python_isolate_worker_dependencies
- The image's versions are read inside the container by ``importlib.metadata`` (the self-test), the local host's
  in its own process: each place reports what it imports, and the three are compared with the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from modelfunc import appenv
from support.core import run_modelfunc

HERE_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _up(repo: Path) -> subprocess.CompletedProcess[str]:
    return run_modelfunc("up", str(repo), "--image", "off", "--timeout", "60", timeout=600)


def _repo(parent: Path, run: str, requirements: list[str], expected: object, *, head: str = "",
          python_version: str = HERE_PYTHON, name: str = "envapp") -> Path:
    """An HTTP model repo whose score.py is ``head``, an empty init() and ``run(data)`` with the body ``run``."""
    repo = parent / name
    (repo / "model").mkdir(parents=True)
    (repo / "samples").mkdir()
    (repo / "model" / "model.json").write_text("{}\n")
    (repo / "score.py").write_text(f"{head}\ndef init():\n    pass\n\n\ndef run(data):\n"
                                   + textwrap.indent(textwrap.dedent(run).strip() + "\n", "    "))
    (repo / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))
    (repo / "modelfunc.yaml").write_text(f"name: {name}\npython_version: '{python_version}'\n"
                                         "environment: requirements.txt\ntrigger:\n  type: http\n")
    (repo / "samples" / "input.json").write_text('{"data": 1}\n')
    (repo / "samples" / "expected.json").write_text(json.dumps(expected) + "\n")
    return repo


def _pip_freeze() -> str:
    return subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                          check=True).stdout


def test_a_repo_whose_requirements_conflict_with_modelfuncs_leaves_modelfunc_untouched(tmp_path) -> None:
    """The issue's case: an app pinning a library below modelfunc's own minimum (azure-identity>=1.19). Before,
    `up --install-requirements` downgraded it in modelfunc's Python; now the app gets its own environment."""
    repo = _repo(tmp_path, """
        import azure.identity  # the app's own, older one
        return {"azure-identity": version("azure-identity"), "module": azure.identity.__name__}
        """, ["azure-identity==1.10.0"], {"azure-identity": "1.10.0", "module": "azure.identity"},
                 head="from importlib.metadata import version")
    before = _pip_freeze()
    result = run_modelfunc("up", str(repo), "--image", "off", "--install-requirements", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--install-requirements is no longer needed" in result.stderr
    assert '"azure-identity": "1.10.0"' in result.stdout or "1.10.0" in result.stdout
    assert "environment: " in result.stdout and "the same versions in run() directly, local host" in result.stdout
    # modelfunc's own environment: unchanged, and pip finds nothing broken in it.
    assert _pip_freeze() == before
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    from importlib.metadata import version

    assert version("azure-identity") != "1.10.0"
    lock = appenv.read_lock(repo / "build" / "app" / "requirements.lock")
    assert lock.versions()["azure-identity"] == "1.10.0"
    assert all(len(p.sha256) == 64 for p in lock.packages)


def test_the_app_cannot_borrow_modelfuncs_packages(tmp_path) -> None:
    """score.py importing a package its requirements do not list fails locally as it would in the image, although
    modelfunc's own Python has it (PyYAML is one of modelfunc's dependencies)."""
    import yaml  # noqa: F401 - present in modelfunc's environment: the point of the test

    repo = _repo(tmp_path, "import yaml\nreturn yaml.safe_dump(data)", [], "data: 1\n")
    result = _up(repo)
    assert result.returncode != 0
    assert "No module named 'yaml'" in result.stdout + result.stderr


def test_an_app_shadowing_a_host_library_too_old_is_named(tmp_path) -> None:
    """The app's packages come first (as in the Functions worker); one older than the local host needs is a clear
    error naming it, not a failure somewhere inside the host."""
    repo = _repo(tmp_path, "return data", ["starlette==0.20.4"], {"data": 1})
    result = _up(repo)
    assert result.returncode != 0
    assert "the app's environment has starlette 0.20.4" in result.stderr
    assert "the local host needs starlette>=" in result.stderr


def test_the_lock_is_written_reused_and_refreshed(tmp_path) -> None:
    repo = _repo(tmp_path, "return data", ["six==1.16.0"], {"data": 1})
    first = run_modelfunc("package", str(repo), "--no-build", "--json", str(tmp_path / "p.json"), timeout=600)
    assert first.returncode == 0, first.stderr
    lockfile = repo / "build" / "app" / "requirements.lock"
    lock = appenv.read_lock(lockfile)
    assert lock.python_version == HERE_PYTHON
    assert lock.versions()["six"] == "1.16.0" and "azure-functions" in lock.versions()
    text = lockfile.read_text()
    assert "six==1.16.0 --hash=sha256:" in text
    listed = json.loads((tmp_path / "p.json").read_text())["lock"]  # listed in the output
    assert listed["path"] == str(lockfile) and listed["packages"] == lock.versions()
    assert f"dependencies: requirements.lock ({len(lock.packages)} packages" in first.stderr
    # pip itself accepts it as a hash-checking requirements file (and the hashes are the wheels' own).
    check = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
                            "--ignore-installed", "--require-hashes", *appenv.pip_platform_args(HERE_PYTHON),
                            "-r", str(lockfile)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    second = run_modelfunc("package", str(repo), "--no-build", timeout=600)
    assert "locked before for these requirements" in second.stderr
    third = run_modelfunc("package", str(repo), "--no-build", "--refresh-dependencies", timeout=600)
    assert "dependencies: resolving for CPython" in third.stderr
    assert appenv.read_lock(lockfile).versions() == lock.versions()


def test_a_lock_from_another_hand_is_refused_clearly(tmp_path) -> None:
    bad = tmp_path / "requirements.lock"
    bad.write_text("# lock-format: 1\n# python-version: 3.11\nnumpy>=1\n")
    with pytest.raises(appenv.EnvironmentSpecError) as e:
        appenv.read_lock(bad)
    assert "'numpy>=1' is not a locked requirement" in str(e.value) and ":3" in str(e.value)
    bad.write_text("six==1.16.0 --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(appenv.EnvironmentSpecError, match="is not a lock of this modelfunc"):
        appenv.read_lock(bad)


def test_compare_names_each_place_and_package_that_differs() -> None:
    lock = appenv.Lock("3.11", [appenv.Locked("numpy", "2.4.6", "a" * 64), appenv.Locked("six", "1.16.0", "b" * 64)],
                       "")
    same = {"numpy": "2.4.6", "six": "1.16.0"}
    assert appenv.compare(lock, {"image": same, "local host": same}) == []
    assert appenv.compare(lock, {"image": same, "local host": {"numpy": "1.26.4", "six": "1.16.0"},
                                 "run() directly": {"numpy": "2.4.6"}}) == [
        "local host: numpy 1.26.4, locked 2.4.6", "run() directly: six missing, locked 1.16.0"]


def test_the_apps_python_here_imports_its_dependencies_from_their_bytecode(tmp_path, monkeypatch) -> None:
    """The tree the local host runs from carries its bytecode, as pip's default install writes it: with
    PYTHONDONTWRITEBYTECODE set (as in many CI images, and this machine's), each start of a host or of a worker
    process would otherwise compile every module the app imports. The reference is CPython's import system:
    `python -v` says "<pyc> matches <source>" when it takes a .pyc, and "code object from <source>.py" when it
    compiles the source instead."""
    pip_cache = appenv.default_pip_cache()  # the wheels this machine has; the trees go to an empty cache below
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo = _repo(tmp_path, "return data", ["six==1.16.0", "idna==3.10"], {"data": 1})
    said: list[str] = []
    _, env = appenv.for_app(repo, cache_dir=pip_cache, progress=said.append)
    assert any(m.startswith("dependencies: ") and " modules compiled in " in m for m in said), said
    proc = subprocess.run([str(env.python), "-v", "-c", "import six, idna"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    tree = str(env.site_packages)
    took = [line for line in proc.stderr.splitlines() if " matches " in line and tree in line]
    compiled = [line for line in proc.stderr.splitlines()
                if line.startswith(f"# code object from '{tree}") and line.endswith(".py'")]
    assert len(took) >= 3 and not compiled, (took, compiled)  # six, idna's package and its modules
    assert not list(env.site_packages.glob("*.pyc"))  # beside the sources: in __pycache__, where CPython looks
    # Once per tree: the next run compiles nothing; a tree an older modelfunc installed without it gets it once.
    said.clear()
    appenv.for_app(repo, cache_dir=pip_cache, progress=said.append)
    assert not [m for m in said if "compil" in m], said
    for cache in env.site_packages.rglob("__pycache__"):
        shutil.rmtree(cache)
    env.site_packages.with_name(f".{env.site_packages.name}.bytecode").unlink()
    appenv.for_app(repo, cache_dir=pip_cache, progress=said.append)
    assert any(" modules compiled in " in m for m in said) and list(env.site_packages.rglob("*.pyc")), said


def test_the_layer_and_the_local_host_share_one_compile_of_the_tree(tmp_path, monkeypatch) -> None:
    """`package` compiles the locked tree once, beside its sources, with the image's path as each module's name; the
    dependencies layer carries those very files, and the app's Python here takes them without compiling again."""
    pip_cache = appenv.default_pip_cache()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo = _repo(tmp_path, "return data", ["six==1.16.0", "idna==3.10"], {"data": 1})
    out = tmp_path / "out"
    packaged = run_modelfunc("package", str(repo), "--no-build", "--out", str(out), "--pip-cache", str(pip_cache),
                             timeout=600)
    assert packaged.returncode == 0, packaged.stderr
    assert packaged.stderr.count(" modules compiled in ") == 1, packaged.stderr
    said: list[str] = []
    _, env = appenv.for_app(out / "app", cache_dir=pip_cache, progress=said.append)  # the app `package` wrote
    assert env.same_as_image and not [m for m in said if "compil" in m], said
    with tarfile.open(out / "layers" / "dependencies.tar") as layer:
        pycs = {m.name: layer.extractfile(m).read() for m in layer.getmembers() if m.name.endswith(".pyc")}
    assert len(pycs) >= 3
    prefix = appenv.IMAGE_SITE_PACKAGES.lstrip("/") + "/"
    for name, data in pycs.items():
        assert name.startswith(prefix), name
        assert (env.site_packages / name.removeprefix(prefix)).read_bytes() == data, name
        assert appenv.IMAGE_SITE_PACKAGES.encode() in data  # the image's path, not this machine's


def test_another_python_than_this_machines_runs_the_same_versions_here(tmp_path) -> None:
    """An app for a Python this machine has no interpreter of: the image's wheels cannot run here, so the same
    locked versions are installed for this machine's Python, and the run says so."""
    other = next(v for v in ("3.12", "3.10", "3.13") if v != HERE_PYTHON and appenv.matching_python(v) is None)
    repo = _repo(tmp_path, 'return {"six": version("six")}', ["six==1.16.0"], {"six": "1.16.0"}, python_version=other,
                 head="from importlib.metadata import version")
    result = _up(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"the app runs here on Python {HERE_PYTHON}" in result.stderr
    assert f"the image runs CPython {other} on linux/x86-64" in result.stderr
    assert appenv.read_lock(repo / "build" / "app" / "requirements.lock").python_version == other


@pytest.mark.timeout(900)
def test_a_requirement_held_far_below_its_newest_release_is_explained(tmp_path) -> None:
    """The issue's 2019 case: unpinned azureml-defaults resolves to 1.0.45 for CPython 3.11 from wheels only. The
    lock (and the run) say which, why, and what fixes it."""
    req = tmp_path / "requirements.txt"
    req.write_text("azure-functions\nazureml-defaults\n")
    messages: list[str] = []
    lock = appenv.resolve(req, python_version="3.11", refresh=True, progress=messages.append)
    got = lock.versions()["azureml-defaults"]
    assert got.startswith("1.0."), got
    note = next(n for n in lock.notes if n.startswith("azureml-defaults resolved to"))
    assert f"azureml-defaults resolved to {got}, far below its newest release" in note
    assert "cannot be installed from wheels for CPython 3.11 on linux/x86-64" in note
    assert "Fix: " in note
    assert any(m.startswith("WARNING: azureml-defaults resolved to") for m in messages)
    assert "# note: azureml-defaults resolved to" in lock.render()


def test_a_lock_for_a_python_this_machine_cannot_run_falls_back_loudly(tmp_path) -> None:
    """azure-functions 2.x, locked for CPython 3.13, needs Python >= 3.13: on a machine running modelfunc on an older
    Python the locked versions cannot be installed, so the local run uses the requirements resolved for this
    machine — said as a warning, and the versions are compared in the image only (not claimed for the local run)."""
    if HERE_PYTHON == "3.13":
        pytest.skip("this machine runs 3.13 itself")
    repo = _repo(tmp_path, "return json.loads(data)", [], {"data": 1}, python_version="3.13", head="import json")
    result = _up(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    lock = appenv.read_lock(repo / "build" / "app" / "requirements.lock")
    assert lock.python_version == "3.13"
    assert f"WARNING: the versions locked for CPython 3.13 do not install on this machine's Python {HERE_PYTHON}" \
        in result.stderr
    assert "Run modelfunc on Python 3.13 to run the locked versions here too" in result.stderr
    assert "(the local run used its requirements resolved for this machine's Python: not compared)" in result.stdout


@pytest.mark.parametrize(("got", "newest", "far"), [
    ("1.0.45", "1.62.0", True),  # the azureml-defaults
    ("1.26.4", "2.4.0", True),  # another major version
    ("0.15.1", "0.18.0", True),  # three minor versions behind
    ("2.4.6", "2.5.5", False),  # numpy 2.5 needs Python >= 3.12: the usual march of releases, not worth a warning
    ("2026.6", "2026.7", False),
])
def test_far_below_is_a_major_version_or_two_minor_versions(got: str, newest: str, far: bool) -> None:
    from packaging.version import Version

    assert appenv.far_behind(Version(got), Version(newest)) is far
