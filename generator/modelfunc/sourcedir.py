"""The entry script's source directory: what of it is shipped in the app, and what is left out, and why.

Azure ML uploads the whole ``source_directory`` of a deployment (the folder holding ``score.py``) less what
its ignore file excludes: ``.amlignore`` when there is one, else ``.gitignore``, read from that directory
only, in gitignore syntax. modelfunc does the same, and also leaves out:

* the build output (``--out``, and any other folder modelfunc wrote: it holds ``.modelfunc-build``);
* the model directory, which is shipped on its own as the app's ``model/`` (the image's model layer);
* modelfunc's own inputs, which become the app's generated files: the config file (``modelfunc.yaml``)
  and the environment file (``environment.yml`` / ``requirements.txt`` → the app's ``requirements.txt``);
* version-control, CI, editor and tool folders and files (``TOOLING_DIRS``, ``TOOLING_FILES``, any virtual
  environment: a folder holding ``pyvenv.cfg``), and compiled bytecode;
* symbolic links that lead out of the source directory (or nowhere): never followed, so nothing outside
  it is shipped through a link. A link to a file or folder inside it is shipped as a copy of what it
  points to;
* anything that is not a regular file or a folder (a named pipe, a socket, a device): never opened, so
  nothing here can block on one.

The model directory is walked by ``model_files``, more strictly: every file in it is meant to ship, so a link
that leads out of the model repo (or nowhere, or round in a loop) and anything that is not a regular file is an
error naming it, instead of a model shipped incomplete or with a file from elsewhere on this machine. Folders that
are never part of a model (``.git``, virtual environments, caches, ``node_modules``, the build output) are passed
over. ``listed_model_files`` does the same for the files (and folders) modelfunc.yaml's ``model_files`` lists —
model files beside score.py, as Azure ML v1 projects keep them — and ``collect`` then leaves those out of the code.

Nothing here reads a file's contents except the ignore file; the walk is sorted, so the result is
deterministic.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

from .errors import PackageError

AMLIGNORE, GITIGNORE = ".amlignore", ".gitignore"
BUILD_MARKER = ".modelfunc-build"  # appgen.MARKER: every output modelfunc writes holds it
TOOLING_DIRS = frozenset({
    ".git", ".hg", ".svn", ".github", ".gitlab", ".circleci", ".azure-pipelines", ".devcontainer",
    ".vscode", ".idea", "__pycache__", ".venv", "venv", "node_modules", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints", ".python_packages",
})
TOOLING_FILES = frozenset({
    AMLIGNORE, GITIGNORE, ".gitattributes", ".gitmodules", ".gitlab-ci.yml", "azure-pipelines.yml",
    ".pre-commit-config.yaml", ".DS_Store", "Thumbs.db",
})
TOOLING_SUFFIXES = (".pyc", ".pyo")

# Why something was left out (the keys of SourceFiles.reasons()); the ignore file's own name is one too.
BUILD_OUTPUT = "build output"
TOOLING = "tooling"
MODELFUNC_INPUT = "modelfunc input"
SYMLINK_OUT = "symlink out of the source directory"
SYMLINK_LOOP = "symlink loop"
SYMLINK_MODEL = "symlink into the model directory"
SYMLINK_LEFT_OUT = "symlink to something left out"
NOT_A_FILE = "not a regular file"
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class LeftOut:
    path: str  # relative to the source directory, POSIX; a folder ends with "/"
    reason: str  # ".amlignore", ".gitignore", or one of the reasons above
    size: int | None = None  # bytes, for a file (a folder left out is not walked)
    target: str | None = None  # where a symbolic link points

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "reason": self.reason}
        if self.size is not None:
            data["bytes"] = self.size
        if self.target is not None:
            data["target"] = self.target
        return data


@dataclass(frozen=True)
class SourceFiles:
    root: Path
    files: tuple[tuple[str, Path], ...]  # (path in the app, relative POSIX; the file to copy), sorted
    sizes: tuple[int, ...]
    left_out: tuple[LeftOut, ...]
    ignore_file: str | None = None  # AMLIGNORE or GITIGNORE: the one that was read, if any

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    def reasons(self) -> Counter[str]:
        return Counter(item.reason for item in self.left_out)

    def largest(self, n: int = 3) -> list[tuple[str, int]]:
        pairs = sorted(zip((rel for rel, _ in self.files), self.sizes, strict=True), key=lambda p: (-p[1], p[0]))
        return pairs[:n]

    def summary_line(self, shown_as: str, *, limit: int = 5) -> str:
        """One line: what was shipped from where, what was left out and why, the largest of each."""
        largest = ", ".join(f"{rel} {_size(size)}" for rel, size in self.largest())
        line = (f"source: {len(self.files)} file{'s' if len(self.files) != 1 else ''} ({_size(self.total_bytes)}) "
                f"from {shown_as}" + (f" (largest: {largest})" if largest else ""))
        if not self.left_out:
            return line + "; nothing left out"
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.reasons().items()))
        ordered = sorted(self.left_out, key=lambda i: (i.size is None, -(i.size or 0), i.path))
        shown = ", ".join(i.path + (f" {_size(i.size)}" if i.size is not None else "") for i in ordered[:limit])
        more = f", and {len(ordered) - limit} more (--json lists them)" if len(ordered) > limit else ""
        return f"{line}; left out {len(self.left_out)} ({counts}): {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {"dir": str(self.root), "ignore_file": self.ignore_file, "files": len(self.files),
                "bytes": self.total_bytes, "shipped": [rel for rel, _ in self.files],
                "left_out": [item.to_dict() for item in self.left_out]}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"  # pragma: no cover


def _ignore_spec(root: Path) -> tuple[str | None, pathspec.GitIgnoreSpec | None]:
    """The source directory's ignore file, as Azure ML picks it: .amlignore when present, else .gitignore."""
    for name in (AMLIGNORE, GITIGNORE):
        path = root / name
        if regular_file(path):  # a named pipe would block the read for ever
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            return name, pathspec.GitIgnoreSpec.from_lines(lines)
    return None, None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _resolve(path: Path) -> Path | None:
    """Where a path leads, links resolved; None for a link that loops (a -> b -> a), which leads nowhere."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # Python < 3.13 raises RuntimeError for a loop
        return None


def regular_file(path: Path) -> bool:
    """A regular file (through a link): reading it cannot block, as reading a named pipe or a device can."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def collect(root: Path, *, out_dir: Path | None = None, separate: tuple[Path, ...] = (),
            inputs: tuple[Path, ...] = ()) -> SourceFiles:
    """Walk ``root`` (the entry script's folder) and decide, for each file, whether the app gets it.

    ``out_dir`` is the build output; ``separate`` folders and files are shipped otherwise (the model directory, or
    the model files modelfunc.yaml lists), so they are passed over silently; ``inputs`` are modelfunc's own files
    (config, environment), left out.
    """
    root = root.resolve()
    out = out_dir.resolve() if out_dir is not None else None
    separate_real = tuple(p.resolve() for p in separate)
    inputs_real = {p.resolve() for p in inputs}
    ignore_name, spec = _ignore_spec(root)
    files: list[tuple[str, Path, int]] = []
    left: list[LeftOut] = []

    def excluded(entry: os.DirEntry[str], path: Path, real: Path, rel: str, is_dir: bool) -> str | None:
        if is_dir:
            if entry.name in TOOLING_DIRS or (path / "pyvenv.cfg").is_file():
                return TOOLING
            if real == out or (path / BUILD_MARKER).is_file():
                return BUILD_OUTPUT
        else:
            if entry.name in TOOLING_FILES or entry.name.endswith(TOOLING_SUFFIXES):
                return TOOLING
            if real in inputs_real:
                return MODELFUNC_INPUT
        if spec is not None and spec.match_file(rel + "/" if is_dir else rel):
            return ignore_name
        return None

    def target_left_out(real: Path) -> bool:
        """Whether a link inside the source directory points at something the walk leaves out."""
        parts = real.relative_to(root).parts
        if real in inputs_real or (out is not None and _inside(real, out)):
            return True
        if any(part in TOOLING_DIRS for part in parts[:-1]) or parts[-1] in TOOLING_DIRS | TOOLING_FILES:
            return True
        return spec is not None and any(spec.match_file("/".join(parts[:n]) + "/") for n in range(1, len(parts))) \
            or spec is not None and spec.match_file("/".join(parts) + ("/" if real.is_dir() else ""))

    def walk(directory: Path, real_dir: Path, prefix: str, chain: frozenset[Path]) -> None:
        """``chain``: the real paths of the folders above, so a link back up the tree is not walked again."""
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            left.append(LeftOut(prefix or "./", UNREADABLE))
            return
        for entry in entries:
            path = Path(entry.path)
            rel = prefix + entry.name
            link = entry.is_symlink()
            real = (_resolve(path) or path) if link else real_dir / entry.name
            try:
                info: os.stat_result | None = path.stat()  # through a link, to what it points to
            except OSError:
                info = None  # a dangling link
            is_dir = info is not None and stat.S_ISDIR(info.st_mode)
            shown = rel + "/" if is_dir else rel
            if not link and real in separate_real:
                continue  # the model directory (or a model file): shipped in the app's model/
            reason = excluded(entry, path, real, rel, is_dir)
            if reason is None and link:
                # Never follow a link out of the source directory (nor into what is shipped otherwise).
                if info is None or not _inside(real, root) or (out is not None and _inside(real, out)):
                    reason = SYMLINK_OUT
                elif any(_inside(real, s) for s in separate_real):
                    reason = SYMLINK_MODEL
                elif is_dir and real in chain:
                    reason = SYMLINK_LOOP
                elif real != root and target_left_out(real):
                    reason = SYMLINK_LEFT_OUT
                if reason is not None:
                    left.append(LeftOut(shown, reason, None, os.readlink(path)))
                    continue
            if reason is None and info is not None and not is_dir and not stat.S_ISREG(info.st_mode):
                reason = NOT_A_FILE
            if reason is not None:
                size = info.st_size if info is not None and not is_dir and reason != NOT_A_FILE else None
                left.append(LeftOut(shown, reason, size))
            elif is_dir:
                walk(path, real, rel + "/", chain | {real})
            else:
                assert info is not None
                files.append((rel, path, info.st_size))

    walk(root, root, "", frozenset({root}))
    files.sort(key=lambda f: f[0])
    return SourceFiles(root, tuple((rel, p) for rel, p, _ in files), tuple(s for _, _, s in files),
                       tuple(left), ignore_name)


# ---------------------------------------------------------------------------------------- the model directory

MODEL_SKIPPED = frozenset({"__pycache__", ".DS_Store"})  # never model files
# What a model file is called, by its ending: how `modelfunc init` (and a model_dir that holds the entry script)
# tells the model files beside score.py from its code. JSON is not among them: beside score.py it is far more often
# configuration (inferenceconfig.json, package.json) or a sample; a JSON model is listed in model_files by name.
MODEL_SUFFIXES = (
    ".pkl", ".pickle", ".joblib", ".sav", ".onnx", ".pt", ".pth", ".ckpt", ".safetensors", ".h5", ".hdf5",
    ".keras", ".pb", ".tflite", ".mlmodel", ".cbm", ".ubj", ".xgb", ".lgb", ".npy", ".npz", ".model", ".bin",
)


def is_model_file(name: str) -> bool:
    """Whether a file's name says it holds a model (MODEL_SUFFIXES)."""
    return name.lower().endswith(MODEL_SUFFIXES)


def never_model_dir(path: Path, name: str) -> bool:
    """A folder that is never part of a model: version control and tool folders, caches, node_modules, a virtual
    environment (any folder holding pyvenv.cfg) and modelfunc's own build output (it holds BUILD_MARKER)."""
    return name in TOOLING_DIRS or (path / "pyvenv.cfg").is_file() or (path / BUILD_MARKER).is_file()


def find_model_files(folder: Path) -> list[Path]:
    """The model files directly in ``folder`` (regular files, or links to them, whose name says model), sorted."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if is_model_file(e.name) and regular_file(Path(e.path))]


def model_files(model_dir: Path, *, repo: Path, out_dir: Path | None = None) -> tuple[tuple[str, Path], ...]:
    """Every file of the model directory: (its path in the app's model/, relative POSIX; the file to copy), sorted.

    Files are copied only from inside the model repo. A symbolic link is resolved: one whose target is inside
    the repo (and not in the build output) is shipped as a copy of what it points to, the way a link beside
    score.py is; one that leads out of the repo, or nowhere, or back up its own tree, is an error naming the link
    and its target, as is anything that is neither a regular file nor a folder (a named pipe, a socket, a device).
    Folders that are never part of a model (``never_model_dir``: ``.git``, virtual environments, caches,
    ``node_modules``, the build output) are passed over.
    """
    root = model_dir.resolve()
    return _ModelWalk(repo, out_dir).walk(root, "", frozenset({root}))


def listed_model_files(items: tuple[Path, ...], *, repo: Path, out_dir: Path | None = None
                       ) -> tuple[tuple[str, Path], ...]:
    """The files of ``model_files:`` in modelfunc.yaml (each a file or a folder in the repo), as :func:`model_files`
    gives them: a file lands in the app's model/ under its own name, a folder's files under the folder's name (so
    ``Model.get_model_path('sklearn_regression_model.pkl')`` finds the file it names, as in Azure ML, where a
    registered model keeps its file's name). Two items landing on the same name are an error naming both."""
    walker = _ModelWalk(repo, out_dir)
    found: dict[str, tuple[Path, Path]] = {}  # path in model/ -> (its file, the item it came from)
    for item in items:
        path = Path(item)
        if path.is_dir():
            real = path.resolve()
            got = walker.walk(real, path.name + "/", frozenset({real}))
        else:
            got = walker.entry(path, path.name, frozenset())
        for rel, file in got:
            if rel in found and found[rel][1] != path:
                raise PackageError(
                    f"model_files: {path.name!r} and {found[rel][1].name!r} would both ship as model/{rel}",
                    file=path, hint="rename one of them, or list the folder that holds them instead")
            found[rel] = (file, path)
    return tuple(sorted((rel, file) for rel, (file, _) in found.items()))


class _ModelWalk:
    """The model layer's walk: links checked, never-model folders passed over, anything not a file refused."""

    def __init__(self, repo: Path, out_dir: Path | None) -> None:
        self.repo = repo.resolve()
        self.out = out_dir.resolve() if out_dir is not None else None

    @staticmethod
    def refuse(path: Path, why: str, hint: str) -> PackageError:
        return PackageError(why, file=path, hint=hint)

    def walk(self, directory: Path, prefix: str, chain: frozenset[Path]) -> tuple[tuple[str, Path], ...]:
        files: list[tuple[str, Path]] = []
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            if entry.name in MODEL_SKIPPED:
                continue
            path = Path(entry.path)
            if entry.is_dir() and (never_model_dir(path, entry.name)
                                   or (self.out is not None and _resolve(path) == self.out)):
                continue
            files.extend(self.entry(path, prefix + entry.name, chain))
        return tuple(sorted(files))

    def entry(self, path: Path, rel: str, chain: frozenset[Path]) -> tuple[tuple[str, Path], ...]:
        repo, out = self.repo, self.out
        resolved = _resolve(path)
        real = resolved or path
        if path.is_symlink():
            target = os.readlink(path)
            if resolved is None or not real.exists():
                what = "which leads round in a loop" if resolved is None else "which does not exist"
                raise self.refuse(path, f"is a symbolic link to {target}, {what}: the model would ship without it",
                                  "copy the file itself into the model directory, or remove the link")
            if not _inside(real, repo):
                raise self.refuse(path, f"is a symbolic link to {target}, outside the model repo: model files are "
                                        f"copied only from inside the repo ({repo}), never through a link out of it",
                                  "copy the file itself into the model directory, or remove the link")
            if out is not None and _inside(real, out):
                raise self.refuse(path, f"is a symbolic link to {target}, inside the build output, which packaging "
                                        "replaces", "copy the file itself into the model directory")
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            if real in chain:
                how = f"is a symbolic link to {os.readlink(path)}, a folder above it" if path.is_symlink() else \
                    "is a folder reached again through a symbolic link above it"
                raise self.refuse(path, f"{how}: the model directory would never end", "remove the link")
            return self.walk(path, rel + "/", chain | {real})
        if stat.S_ISREG(info.st_mode):
            return ((rel, real),)  # what the check above passed, not the link (which could change)
        raise self.refuse(path, f"is {file_kind(info.st_mode)}, not a regular file: only files and folders "
                                "can be model files", "remove it from the model directory")
