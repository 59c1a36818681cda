"""Resolution: the generated ``requirements.txt`` turned into a :class:`~.lock.Lock` by pip's own resolver
(``pip install --dry-run --report``, wheels for the image's platform only), cached per requirements text; and, for
an unpinned requirement that resolved far below its newest release, which and why, and what would fix it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import EnvironmentSpecError, NoWheel  # noqa: F401 - NoWheel: importable from appenv as before
from .lock import LOCK_FORMAT, Lock, Locked, read_lock
from .pip import Progress, cache_root, pip_command, pip_platform_args, quiet

PYTHONS = ("3.10", "3.11", "3.12", "3.13")  # what the Functions Python images run (config.PYTHON_VERSIONS)


def _lock_key(requirements_text: str, python_version: str) -> str:
    parts = [str(LOCK_FORMAT), python_version, *pip_platform_args(python_version), requirements_text]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def resolve(requirements: Path, *, python_version: str, cache_dir: Path | None = None, refresh: bool = False,
            progress: Progress = quiet, source: Path | None = None) -> Lock:
    """The lock for ``requirements`` (cached per requirements text and Python version unless ``refresh``).
    ``source``: the user's file they were generated from, which errors name (default: ``requirements``)."""
    text = requirements.read_text(encoding="utf-8")
    cached = cache_root() / "locks" / f"{_lock_key(text, python_version)}.lock"
    if not refresh and cached.is_file():
        try:
            lock = read_lock(cached)
        except EnvironmentSpecError as e:
            progress(f"dependencies: the cached lock {cached.name} cannot be used ({e.message}): resolving again")
        else:
            progress(f"dependencies: {len(lock.packages)} packages locked before for these requirements "
                     "(--refresh-dependencies resolves them again)")
            for note in lock.notes:
                progress("WARNING: " + note)
            return lock
    progress(f"dependencies: resolving for CPython {python_version} on linux/x86-64 (pip, wheels only)")
    report = _dry_run(["--requirement", str(requirements)], python_version=python_version, cache_dir=cache_dir,
                      file=source or requirements)
    lock = _lock_from_report(report, python_version, hashlib.sha256(text.encode()).hexdigest())
    lock.notes = _far_below(report, requirements, python_version=python_version, cache_dir=cache_dir,
                            progress=progress)
    for note in lock.notes:
        progress("WARNING: " + note)
    progress(f"dependencies: {len(lock.packages)} packages locked")
    _write_atomically(cached, lock.render())
    return lock


def _dry_run(args: list[str], *, python_version: str, cache_dir: Path | None, file: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="modelfunc-lock-") as tmp:
        report_file = Path(tmp) / "report.json"
        cmd = pip_command("install", "--dry-run", "--ignore-installed", "--report", str(report_file),
                   *pip_platform_args(python_version), *args, cache_dir=cache_dir)
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        if proc.returncode == 0:
            return json.loads(report_file.read_text(encoding="utf-8"))
    output = proc.stderr + proc.stdout
    lines = [ln for ln in output.splitlines() if ln.strip()]
    missing = re.search(r"No matching distribution found for (\S+)", output)
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    problem = next((ln for ln in errors if "No matching distribution" in ln or "Could not find a version" in ln),
                   next((ln for ln in errors if not ln.startswith(("ERROR: Ignored the following",
                                                                    "ERROR: ResolutionImpossible"))),
                        errors[-1] if errors else (lines[-1] if lines else "pip failed")))
    # pip's ResolutionImpossible names, after the conflict, the packages with nothing installable for the target
    unavailable = re.search(r"no matching distributions available for your environment:\n((?:[ \t]+\S+\n?)+)",
                            output)
    if unavailable and not missing:
        names = [n.strip() for n in unavailable.group(1).splitlines() if n.strip()]
        problem = f"nothing installable from wheels for {', '.join(names)}"
    if missing and _has_sdist(missing.group(1), cache_dir):
        raise NoWheel(f"{missing.group(1)} has no wheel for CPython {python_version} on linux/x86-64 (only a source "
                      "distribution)", file=file, hint="pin a version that has wheels, or choose another "
                      "python_version")
    raise EnvironmentSpecError(f"the dependencies cannot be resolved for CPython {python_version} on linux/x86-64 "
                               f"from wheels: {problem.removeprefix('ERROR: ')}", file=file,
                               hint="check the package names and versions in environment.yml / requirements.txt")


def _has_sdist(requirement: str, cache_dir: Path | None) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = pip_command("download", "--no-deps", "--no-binary=:all:", "--dest", tmp, "--quiet", requirement,
                   cache_dir=cache_dir)
        return subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL).returncode == 0


def _lock_from_report(report: dict, python_version: str, source_digest: str) -> Lock:
    packages = []
    for item in report.get("install", []):
        meta = item["metadata"]
        sha = (item.get("download_info", {}).get("archive_info", {}).get("hashes") or {}).get("sha256")
        if not sha:
            raise EnvironmentSpecError(f"pip gave no sha256 for {meta['name']} {meta['version']}: it cannot be "
                                       "locked", hint="name a release from the package index")
        packages.append(Locked(meta["name"], meta["version"], sha))
    return Lock(python_version, packages, source_digest)


def _newest(name: str, cache_dir: Path | None) -> Version | None:
    """The newest final release of ``name`` on the index, whatever its files (``pip index versions``)."""
    proc = subprocess.run(pip_command("index", "versions", name, cache_dir=cache_dir), capture_output=True, text=True,
                          errors="replace", stdin=subprocess.DEVNULL)
    m = re.search(r"^Available versions: (.+)$", proc.stdout, re.M)
    versions = []
    for v in (m.group(1).split(", ") if m else []):
        try:
            parsed = Version(v.strip())
        except InvalidVersion:
            continue
        if not parsed.is_prerelease:
            versions.append(parsed)
    return max(versions, default=None)


def _installs(spec: str, python_version: str, cache_dir: Path | None) -> str | None:
    """None when ``spec`` installs from wheels for ``python_version`` on the image's platform; else pip's reason."""
    try:
        _dry_run([spec], python_version=python_version, cache_dir=cache_dir, file=Path(spec))
    except EnvironmentSpecError as e:
        return e.message.split("from wheels: ", 1)[-1]
    return None


def far_behind(got: Version, newest: Version) -> bool:
    """Far below: another major version, or two minor versions or more behind (numpy 2.4 where 2.5 needs a newer
    Python is the usual march of releases; azureml-defaults 1.0.45 where 1.62 is out is not)."""
    major, minor = (newest.release + (0,))[:2]
    got_major, got_minor = (got.release + (0,))[:2]
    return got_major < major or (got_major == major and minor - got_minor >= 2)


def _far_below(report: dict, requirements: Path, *, python_version: str, cache_dir: Path | None,
               progress: Progress) -> list[str]:
    """Notes for requirements the user left open above that resolved far below their newest release (see _far)
    because the newest cannot be installed from wheels on the target: which, why, and a pin or Python version that
    fixes it.
    (Held back by another requirement's constraint is not reported: that is a resolution working.)"""
    resolved = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
                for i in report.get("install", []) if i.get("requested")}
    notes = []
    for raw in requirements.read_text(encoding="utf-8").splitlines():
        raw = raw.split("#", 1)[0].strip()
        if not raw or raw.startswith("-"):
            continue
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            continue
        if any(s.operator in ("==", "===", "~=", "<", "<=") for s in req.specifier):
            continue  # pinned or capped by the user: an older version is what they asked for
        got = resolved.get(canonicalize_name(req.name))
        newest = _newest(req.name, cache_dir) if got is not None else None
        if got is None or newest is None or not far_behind(Version(got), newest):
            continue
        progress(f"dependencies: {req.name} resolved to {got}, its newest release is {newest}: checking why")
        why = _installs(f"{req.name}=={newest}", python_version, cache_dir)
        if why is None:
            continue  # the newest installs on its own: another requirement holds it back
        fixes = [v for v in PYTHONS if v != python_version and _installs(f"{req.name}=={newest}", v, cache_dir) is None]
        fix = (f"python_version {fixes[-1]} in modelfunc.yaml installs {req.name} {newest}" if fixes else
               f"no Python the Functions images run installs {req.name} {newest} from wheels; pin the version you "
               f"mean (e.g. {req.name}=={got}) to say this one is intended, or pin a newer one that installs")
        notes.append(f"{req.name} resolved to {got}, far below its newest release {newest}: {req.name}=={newest} "
                     f"cannot be installed from wheels for CPython {python_version} on linux/x86-64 ({why}). "
                     f"Fix: {fix}.")
    return notes


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs a resolution next time
