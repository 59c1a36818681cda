"""Installed trees: a lock installed (hash-checked) into a cached folder, the image's dependencies layer and the
local run's packages when this machine runs the image's wheels; and the app's own Python on this machine, a virtual
environment (no pip, no packages of its own) that sees only such a tree."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import bytecode
from ..errors import EnvironmentSpecError
from .lock import LOCK_NAME, Lock
from .pip import Progress, cache_root, pip_command, pip_platform_args, quiet


def _install(cmd_args: list[str], dest: Path, *, what: str, cache_dir: Path | None, progress: Progress,
             file: Path | None, replace: bool = False, bytecode_as: str | None = None) -> None:
    """pip-install into a fresh folder that becomes ``dest`` only once complete (a killed run leaves no half
    environment behind for the next run to trust); ``replace``: install again over an existing ``dest``;
    ``bytecode_as``: this machine's Python runs it, so it gets its bytecode (:func:`_compile`) with that name in
    tracebacks, before it replaces the old tree (a run reading the old one's bytecode finds the same files)."""
    if dest.is_dir() and not replace:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="modelfunc-pins-") as tmp:
            progress(f"dependencies: installing {what}")
            cmd = pip_command("install", "--target", str(work / "site-packages"), "--no-deps", "--no-compile",
                       "--no-warn-script-location", *cmd_args, cache_dir=cache_dir)
            cmd = [a.replace("{tmp}", tmp) for a in cmd]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                    stdin=subprocess.DEVNULL)
            lines = []
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip())
                if line.startswith(("Collecting", "Successfully installed")):
                    progress("  " + line.strip())
            if proc.wait():
                problem = next((ln for ln in reversed(lines) if ln.startswith("ERROR:")), "pip failed")
                raise EnvironmentSpecError(f"the locked dependencies cannot be installed ({what}): "
                                           f"{problem.removeprefix('ERROR: ')}", file=file,
                                           hint="--refresh-dependencies resolves them again")
        compiled = None
        if bytecode_as is not None:
            compiled = _compile(work / "site-packages", bytecode_as, progress)
        _bytecode_marker(dest).unlink(missing_ok=True)
        if replace and dest.is_dir():
            dest.rename(work / "old")  # removed with work below; a host still running from it keeps its files
        try:
            (work / "site-packages").rename(dest)
        except OSError:
            if not dest.is_dir():  # else: another run finished the same tree first, which is as good
                raise
        else:
            if compiled is not None:
                _write_marker(dest, compiled)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Where the image has the locked tree (buildcontext.SITE_PACKAGES): the name its bytecode gives each module, so that
# the dependencies layer takes the files the local host uses (CPython names a module by where it found its source).
IMAGE_SITE_PACKAGES = "/home/site/wwwroot/.python_packages/lib/site-packages"


def _bytecode_marker(tree: Path) -> Path:
    return tree.with_name(f".{tree.name}.bytecode")


def _own_compiler() -> bytecode.Compiler:
    """modelfunc's own interpreter, whose base runs the app's environment here."""
    compiler = bytecode.find_compiler(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert compiler is not None  # its own version always has one: itself
    return compiler


def _compile(site: Path, dfile_prefix: str, progress: Progress) -> dict | None:
    """Bytecode beside the sources of ``site``, a tree this machine's Python runs, as pip's default install writes
    it (the trees are installed with --no-compile: pip would compile the packages' own test suites too, in one
    process): without it every start of a host, and of each of its worker processes, compiles every module the app
    imports whenever it cannot keep the result (PYTHONDONTWRITEBYTECODE set, as in many CI images, or a cache it
    cannot write). Hash-checked files (bytecode.py). What the marker beside the tree records, or None."""
    compiler = _own_compiler()
    sources = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.py")
                     if not p.is_symlink() and p.relative_to(site).parts[0] != "bin")
    pairs = bytecode.compile_or_warn(compiler, site, sources, site, dfile_prefix, progress=progress)
    return None if pairs is None else {"compiler": compiler.name, "dfile": dfile_prefix, "pyc": [r for r, _ in pairs]}


def _write_marker(tree: Path, compiled: dict) -> None:
    try:
        _bytecode_marker(tree).write_text(json.dumps(compiled), encoding="utf-8")
    except OSError:
        pass  # compiled again next time


def tree_bytecode(tree: Path, dfile_prefix: str, *, progress: Progress = quiet) -> list[tuple[str, Path]] | None:
    """``tree``'s bytecode (:func:`_compile`) as (the .pyc's path relative to the tree, the file): compiled once per
    tree and ``dfile_prefix`` (a tree an older modelfunc installed without it gets it here), or None when the tree
    cannot be written (a read-only cache) or the compiler failed (said)."""
    try:
        said = json.loads(_bytecode_marker(tree).read_text(encoding="utf-8"))
        if said["compiler"] == _own_compiler().name and said["dfile"] == dfile_prefix:
            pairs = [(rel, tree / rel) for rel in said["pyc"]]
            if all(path.is_file() for _, path in pairs):
                return pairs
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not os.access(tree, os.W_OK):
        return None
    compiled = _compile(tree, dfile_prefix, progress)
    if compiled is None:
        return None
    _write_marker(tree, compiled)
    return [(rel, tree / rel) for rel in compiled["pyc"]]


_TEMPORARY_ROOTS: dict[str, Path] = {}


def _envs_root(name: str, progress: Progress) -> Path:
    """``~/.cache/modelfunc/envs/<name>``, or, when the cache cannot be written (read-only, full), a temporary
    folder for this run only (removed when it ends): a cache that cannot be kept costs only the cache."""
    root = cache_root() / "envs" / name
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
        return root
    except OSError as e:
        if name not in _TEMPORARY_ROOTS:
            import atexit

            tmp = Path(tempfile.mkdtemp(prefix="modelfunc-env-"))
            atexit.register(shutil.rmtree, tmp, True)
            progress(f"dependencies: the cache {root.parent} cannot be written ({e.strerror or e}): the app's "
                     f"environment goes to {tmp}, for this run only")
            _TEMPORARY_ROOTS[name] = tmp
        return _TEMPORARY_ROOTS[name]


def site_tree(lock: Lock, *, cache_dir: Path | None = None, progress: Progress = quiet,
              file: Path | None = None, refresh: bool = False) -> Path:
    """The lock installed (hash-checked, wheels for the image's platform) into a cached folder: the image's
    ``.python_packages/lib/site-packages``. ``refresh``: installed again even when the folder is there."""
    dest = _envs_root(lock.digest[:24], progress) / "image-site-packages"
    if refresh or not dest.is_dir():
        with tempfile.TemporaryDirectory(prefix="modelfunc-lock-") as tmp:
            lockfile = Path(tmp) / LOCK_NAME
            lockfile.write_text(lock.render(), encoding="utf-8")
            _install(["--require-hashes", *pip_platform_args(lock.python_version), "--requirement", str(lockfile)],
                     dest, what=f"{len(lock.packages)} locked packages for the image (CPython {lock.python_version}, "
                     "linux/x86-64)", cache_dir=cache_dir, progress=progress, file=file, replace=refresh,
                     bytecode_as=IMAGE_SITE_PACKAGES if matching_python(lock.python_version) else None)
    else:
        progress(f"dependencies: the locked packages are installed already ({dest.parent.name})")
    return dest


def matching_python(python_version: str) -> str | None:
    """This machine's interpreter (modelfunc's own, whose base runs the app's environment) when it runs the image's
    wheels: Linux x86-64 and the app's Python version. Only modelfunc's own version will do: the local host's code
    runs in the app's process with modelfunc's compiled dependencies, built for that version."""
    if not (sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")):
        return None
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != python_version:
        return None
    return getattr(sys, "_base_executable", None) or sys.executable


@dataclass(frozen=True)
class AppEnv:
    """A Python for the app: ``python`` is a virtual environment's interpreter whose third-party packages are
    those of ``site_packages`` only."""

    python: Path
    site_packages: Path
    same_as_image: bool  # the very tree the image's dependencies layer is made of
    note: str = ""
    locked: bool = True  # the lock's versions (False: the requirements resolved for this machine instead)


def _venv_site(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages")) or sorted(venv.glob("Lib/site-packages"))
    if not found:
        raise EnvironmentSpecError(f"the virtual environment {venv} has no site-packages folder",
                                   hint=f"remove {venv} and run again")
    return found[0]


def _venv(base_python: str, venv: Path, site_packages: Path) -> Path:
    """A virtual environment at ``venv`` (created once, without pip) that sees ``site_packages``."""
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    pth = None
    if python.exists():
        pth = _venv_site(venv) / "modelfunc-app.pth"
        if pth.is_file() and pth.read_text(encoding="utf-8").strip() == str(site_packages):
            return python
    if pth is None:
        venv.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{venv.name}.", dir=venv.parent))
        try:
            proc = subprocess.run([base_python, "-m", "venv", "--without-pip", str(work / "venv")],
                                  capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
            if proc.returncode:
                raise EnvironmentSpecError(f"{base_python} -m venv failed: {proc.stderr.strip()[-300:]}",
                                           hint="install the venv module for that Python (Debian: python3-venv)")
            (_venv_site(work / "venv") / "modelfunc-app.pth").write_text(f"{site_packages}\n", encoding="utf-8")
            try:
                (work / "venv").rename(venv)
            except OSError:
                if not python.exists():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return python
    pth.write_text(f"{site_packages}\n", encoding="utf-8")
    return python


def local_env(lock: Lock, *, cache_dir: Path | None = None, progress: Progress = quiet,
              file: Path | None = None, requirements: Path | None = None) -> AppEnv:
    """The app's Python on this machine, from ``lock``: the image's own tree where this machine runs it,
    otherwise the same versions installed for this machine's Python — or, when those do not exist for it (a
    lock for Python 3.13 on a machine running modelfunc on 3.11), ``requirements`` resolved for this machine,
    said loudly: the versions are then compared in the image only."""
    root = _envs_root(lock.digest[:24], progress)
    base = matching_python(lock.python_version)
    if base is not None:
        tree = site_tree(lock, cache_dir=cache_dir, progress=progress, file=file)
        tree_bytecode(tree, IMAGE_SITE_PACKAGES, progress=progress)  # made by site_tree, unless installed before
        python = _venv(base, root / f"venv-{lock.python_version}", tree)
        return AppEnv(python, tree, True)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    tree = root / f"local-site-packages-{sys.platform}-{platform.machine()}-{here}"
    with tempfile.TemporaryDirectory(prefix="modelfunc-pins-") as tmp:
        pins = Path(tmp) / "pins.txt"
        pins.write_text(lock.pins(), encoding="utf-8")
        try:
            _install(["--requirement", str(pins)], tree, cache_dir=cache_dir, progress=progress, file=file,
                     what=f"the {len(lock.packages)} locked versions for this machine (Python {here}, {sys.platform})")
        except EnvironmentSpecError as e:
            if requirements is None:
                raise
            env = unlocked_env(requirements, cache_dir=cache_dir, progress=progress)
            note = (f"the versions locked for CPython {lock.python_version} do not install on this machine's Python "
                    f"{here} ({e.message.split(': ', 1)[-1]}): the app runs here from its requirements resolved "
                    f"for Python {here}, and only the image runs the lock. Run modelfunc on Python "
                    f"{lock.python_version} to run the locked versions here too")
            progress("WARNING: " + note)
            return AppEnv(env.python, env.site_packages, False, note, locked=False)
    tree_bytecode(tree, str(tree), progress=progress)
    python = _venv(getattr(sys, "_base_executable", None) or sys.executable, root / f"venv-local-{here}", tree)
    note = (f"the app runs here on Python {here} ({sys.platform}/{platform.machine()}) with the locked versions; "
            f"the image runs CPython {lock.python_version} on linux/x86-64")
    progress("    " + note)
    return AppEnv(python, tree, False, note)


def unlocked_env(requirements: Path, *, cache_dir: Path | None = None, progress: Progress = quiet) -> AppEnv:
    """When no lock can be made (a requirement has no wheel for the image, so the image builds it): the
    requirements installed for this machine, still apart from modelfunc's own environment."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:24]
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    root = _envs_root(f"unlocked-{digest}", progress)
    tree = root / f"site-packages-{sys.platform}-{platform.machine()}-{here}"
    if not tree.is_dir():
        # with dependencies: nothing resolved them before
        _install_with_deps(requirements, tree, cache_dir=cache_dir, progress=progress)
    tree_bytecode(tree, str(tree), progress=progress)
    python = _venv(getattr(sys, "_base_executable", None) or sys.executable, root / f"venv-{here}", tree)
    return AppEnv(python, tree, False, "no lock: a requirement has no wheel for the image, which builds it",
                  locked=False)


def _install_with_deps(requirements: Path, dest: Path, *, cache_dir: Path | None, progress: Progress) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        progress("dependencies: installing the requirements for this machine (no lock)")
        proc = subprocess.run(pip_command("install", "--target", str(work / "t"), "--no-compile", "--quiet",
                                   "--requirement", str(requirements), cache_dir=cache_dir),
                              capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        if proc.returncode:
            raise EnvironmentSpecError(f"the requirements cannot be installed: {proc.stderr.strip()[-300:]}",
                                       file=requirements)
        _bytecode_marker(dest).unlink(missing_ok=True)
        (work / "t").rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
