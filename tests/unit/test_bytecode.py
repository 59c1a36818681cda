"""bytecode.py: the dependencies layer's .pyc files, checked against CPython's own reading of them.

The reference is the interpreter: ``importlib.util.source_hash`` (what a checked hash-based .pyc must carry, PEP 552:
https://peps.python.org/pep-0552/) and ``python -v``, which says "<pyc> matches <source>" when the import system
takes a .pyc and "code object from <source>" when it compiles the source instead.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from modelfunc import bytecode

HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"
SOURCES = {"good.py": "VALUE = 41 + 1\n", "pkg/__init__.py": "", "pkg/mod.py": "def f():\n    return 'mod'\n",
           "py2only.py": "print 'an old print statement'\n", "broken.py": "def (:\n"}


def tree(root: Path) -> list[str]:
    for rel, text in SOURCES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return sorted(SOURCES)


def imports(site: Path, *modules: str) -> str:
    """What `python -v` says while importing ``modules`` from ``site`` with no bytecode written."""
    code = f"import sys; sys.path.insert(0, {str(site)!r}); import " + ", ".join(modules)
    proc = subprocess.run([sys.executable, "-I", "-v", "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, cwd=site.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def test_each_source_gets_a_checked_hash_pyc_that_cpython_takes(tmp_path: Path) -> None:
    site, out = tmp_path / "site", tmp_path / "out"
    sources = tree(site)
    compiler = bytecode.find_compiler(HERE)
    said: list[str] = []
    compiled = bytecode.compile_tree(compiler, site, sources, out, "/image/site-packages", progress=said.append)
    assert compiled.failed == ["broken.py", "py2only.py"]  # left as source, as pip leaves them
    tag = sys.implementation.cache_tag
    assert [rel for rel, _ in compiled.pairs] == [
        f"__pycache__/good.{tag}.pyc", f"pkg/__pycache__/__init__.{tag}.pyc",
        f"pkg/__pycache__/mod.{tag}.pyc"]
    assert said[-1].startswith("dependencies: 3 modules compiled in ") and "2 that do not compile" in said[-1]
    for rel, pyc in compiled.pairs:
        data = pyc.read_bytes()
        source = site / rel.replace("__pycache__/", "").replace(f".{tag}.pyc", ".py")
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked
        assert data[8:16] == importlib.util.source_hash(source.read_bytes())
        assert b"/image/site-packages/" in data  # dfile: the path in the image
    # Laid out as the layer lays them out, CPython takes the bytecode.
    for rel, pyc in compiled.pairs:
        (site / rel).parent.mkdir(exist_ok=True)
        (site / rel).write_bytes(pyc.read_bytes())
    said_v = imports(site, "good", "pkg.mod")
    assert f"# {site}/__pycache__/good.{tag}.pyc matches {site}/good.py" in said_v
    assert f"# {site}/pkg/__pycache__/mod.{tag}.pyc matches {site}/pkg/mod.py" in said_v
    assert f"code object from {site}/good.py" not in said_v
    # Checked: a source changed after compiling is compiled again, its stale bytecode refused.
    (site / "good.py").write_text("VALUE = 43\n")
    said_v = imports(site, "good")
    assert f"code object from {site}/good.py" in said_v
    assert f"good.{tag}.pyc matches" not in said_v


def test_the_bytes_do_not_depend_on_the_number_of_processes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    sources = tree(site)
    compiler = bytecode.find_compiler(HERE)
    one = bytecode.compile_tree(compiler, site, sources, tmp_path / "one", "/x", progress=lambda _: None, workers=1)
    two = bytecode.compile_tree(compiler, site, sources, tmp_path / "two", "/x", progress=lambda _: None,
                                workers=2)
    assert [rel for rel, _ in one.pairs] == [rel for rel, _ in two.pairs]
    assert [p.read_bytes() for _, p in one.pairs] == [p.read_bytes() for _, p in two.pairs]


def test_the_compiler_is_an_interpreter_of_the_images_version_or_none() -> None:
    own = bytecode.find_compiler(HERE)
    assert own is not None and own.python == sys.executable
    assert own.name == f"CPython {sys.version.split()[0]}"
    assert bytecode.find_compiler("3.99") is None


def test_a_compiler_that_dies_is_an_error_naming_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dead = bytecode.Compiler("/bin/false", "nothing")
    with pytest.raises(OSError, match="/bin/false stopped with exit code 1 while compiling"):
        bytecode.compile_tree(dead, site, tree(site), tmp_path / "out", "/x", progress=lambda _: None)


def test_the_packages_own_test_suites_stay_source_only(tmp_path: Path) -> None:
    site = tmp_path / "site"
    sources = ["lib/core.py", "lib/tests/test_core.py", "lib/test/helper.py", "lib/testing/tools.py", "tests.py"]
    for rel in sources:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text("X = 1\n")
    said: list[str] = []
    pairs = bytecode.compile_or_warn(bytecode.find_compiler(HERE), site, sources, tmp_path / "out", "/x",
                                     progress=said.append)
    tag = sys.implementation.cache_tag
    assert [rel for rel, _ in pairs] == [f"lib/__pycache__/core.{tag}.pyc", f"lib/testing/__pycache__/tools.{tag}.pyc",
                                         f"__pycache__/tests.{tag}.pyc"]
    assert "dependencies: 2 modules of the packages' own test suites stay source only" in said


def test_a_failed_compiler_is_a_warning_and_no_bytecode(tmp_path: Path) -> None:
    site = tmp_path / "site"
    said: list[str] = []
    assert bytecode.compile_or_warn(bytecode.Compiler("/bin/false", "nothing"), site, tree(site), tmp_path / "out",
                                    "/x", progress=said.append) is None
    assert said[-1].startswith("WARNING: dependencies: no bytecode (/bin/false stopped with exit code 1")
