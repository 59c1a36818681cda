"""Bytecode for the image's dependencies layer, compiled on the build machine by an interpreter of the image's Python
version, so that the app does not compile its imports again at every start.

The layer used to carry sources only, and the image sets ``PYTHONDONTWRITEBYTECODE=1``: every start of the app (each
cold start and each worker process in Azure, each self-test) compiled every module it imported. For scikit-learn that
is about 4 s of CPU per start (1.6 s to import it with bytecode, 5.7 s without, on this project's CI machine). The
layout ``func init --docker`` writes does not pay it: its ``RUN pip install`` compiles, as pip does by default.

The ``.pyc`` files are hash-based and checked (PEP 552: https://peps.python.org/pep-0552/): their header holds a hash
of the source instead of its modification time, so the same sources give the same bytes and the layer stays
reproducible, and the interpreter checks that hash against the ``.py`` beside it before it uses one. They are named
by the compiling interpreter's cache tag (``cpython-311``), and CPython reads them only when that is its own: the
bytecode format is fixed within a minor version (one magic number per 3.X). ``dfile`` is the path in the image, so
tracebacks name that. A file that does not compile for that version (a test fixture for another Python, a template)
gets no ``.pyc``, as with pip; the interpreter then compiles it if it is ever imported. Nor do the packages' own
test suites (:func:`compile_or_warn`), which an app does not import.

The trees the local host runs from get the same bytecode beside their sources (``appenv.tree_bytecode``): where
this machine runs the image's own tree, that one compile, named by the image's paths, is also the layer's.

The compiler is modelfunc's own interpreter when it is of the image's version, else ``pythonX.Y`` on PATH; without
one there is no bytecode, which the progress says (the app then compiles its imports as before). The work is split
over one process per CPU; each runs :data:`WORKER` with ``-I`` (no site packages, no environment variables), so a
compiler of another version needs nothing of modelfunc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

WORKER = """\
import importlib.util, json, os, py_compile, sys
root, out, prefix = sys.argv[1:4]
done, failed = 0, []
for rel in sys.stdin.read().split("\\0"):
    if not rel:
        continue
    cfile = os.path.join(out, importlib.util.cache_from_source(rel))
    try:
        py_compile.compile(os.path.join(root, rel), cfile=cfile, dfile=prefix + "/" + rel, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        done += 1
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeError):
        failed.append(rel)
print(json.dumps({"compiled": done, "failed": failed, "tag": sys.implementation.cache_tag}))
"""

IDENTIFY = ("import platform, sys; "
            "print(platform.python_implementation(), platform.python_version(), *sys.version_info[:2])")


@dataclass(frozen=True)
class Compiler:
    python: str
    name: str  # "CPython 3.11.7": in the dependencies layer's cache key (another release may emit other bytes)


def find_compiler(python_version: str) -> Compiler | None:
    """An interpreter of ``python_version`` (``3.11``) on this machine: modelfunc's own, else ``pythonX.Y`` on PATH."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python_version:
        import platform

        return Compiler(sys.executable, f"{platform.python_implementation()} {platform.python_version()}")
    found = shutil.which(f"python{python_version}")
    if not found:
        return None
    try:
        proc = subprocess.run([found, "-I", "-c", IDENTIFY], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    words = proc.stdout.split()
    if proc.returncode or len(words) != 4 or f"{words[2]}.{words[3]}" != python_version:
        return None
    return Compiler(found, f"{words[0]} {words[1]}")


@dataclass(frozen=True)
class Compiled:
    pairs: list[tuple[str, Path]]  # (the .pyc's path relative to the tree, the file written)
    failed: list[str]  # sources (relative) that did not compile


def compile_tree(compiler: Compiler, root: Path, sources: Sequence[str], out: Path, dfile_prefix: str, *,
                 progress: Callable[[str], None], workers: int | None = None) -> Compiled:
    """Compile ``sources`` (paths relative to ``root``) into ``out``, mirroring them (``a/b.py`` ->
    ``a/__pycache__/b.<tag>.pyc``), with ``dfile_prefix/<source>`` (its path in the image) as each file's name in
    tracebacks; ``workers`` processes (default: one per CPU). Raises OSError when a compiler process cannot run or
    dies."""
    count = workers or max(1, min(os.cpu_count() or 1, len(sources) // 200 + 1))  # a process for 200 files at least
    progress(f"dependencies: compiling {len(sources):,} modules to bytecode with {compiler.name} "
             f"({count} process{'es' if count > 1 else ''})")
    start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)

    def run(chunk: Sequence[str]) -> dict:
        proc = subprocess.run([compiler.python, "-I", "-c", WORKER, str(root), str(out), dfile_prefix],
                              input="\0".join(chunk).encode(), capture_output=True)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise OSError(f"{compiler.python} stopped with exit code {proc.returncode} while compiling: "
                          f"{proc.stderr.decode('utf-8', 'replace').strip()[-300:]}") from None

    with ThreadPoolExecutor(count) as pool:  # each thread waits on its own process
        results = list(pool.map(run, [sources[i::count] for i in range(count)]))
    failed = {f for r in results for f in r["failed"]}
    tag = results[0]["tag"]
    pairs = []
    for rel in sources:
        if rel in failed:
            continue
        head, name = os.path.split(rel)
        cached = "/".join(p for p in (head, "__pycache__", f"{name[:-3]}.{tag}.pyc") if p)
        pairs.append((cached, out / cached))
    note = f"; {len(failed)} that do not compile for it left as source" if failed else ""
    progress(f"dependencies: {len(pairs):,} modules compiled in {time.monotonic() - start:.1f} s{note}")
    return Compiled(pairs, sorted(failed))


def missing(python_version: str) -> str:
    """What a run says when this machine has no interpreter of the app's Python to compile with."""
    return (f"dependencies: no Python {python_version} on this machine to compile them to bytecode with, so the app "
            f"compiles what it imports at every start (install python{python_version}, or run modelfunc on Python "
            f"{python_version})")


TEST_SUITES = frozenset({"tests", "test"})  # a package's own test suite: never imported by an app


def compile_or_warn(compiler: Compiler, root: Path, sources: Sequence[str], out: Path, dfile_prefix: str, *,
                    progress: Callable[[str], None]) -> list[tuple[str, Path]] | None:
    """:func:`compile_tree`'s pairs for ``sources`` but the packages' own test suites (files under a ``tests`` or
    ``test`` folder: 968 of the 2,498 modules of the template's scikit-learn stack, which an app never imports and
    the interpreter would compile if one ever did), or None when the compiler failed, said as a warning: the app
    then ships sources only, and compiles what it imports at every start, as before."""
    wanted = [rel for rel in sources if TEST_SUITES.isdisjoint(rel.split("/")[:-1])]
    if len(wanted) < len(sources):
        progress(f"dependencies: {len(sources) - len(wanted):,} modules of the packages' own test suites stay "
                 "source only")
    try:
        return compile_tree(compiler, root, wanted, out, dfile_prefix, progress=progress).pairs
    except OSError as e:
        progress(f"WARNING: dependencies: no bytecode ({e}): the app compiles what it imports at every start")
        return None
