"""Static checks of the entry script at package time (nothing of score.py is imported or run).

The runtime shim repeats the checks that need the real objects (decorators) when the app loads;
this catches the common mistakes early, with a line number, before anything is built.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EntryScriptError


@dataclass(frozen=True)
class EntryScriptInfo:
    path: Path
    style: str  # json | schema | rawhttp
    local_modules: tuple[Path, ...] = field(default=())


def _decorator_names(fn: ast.FunctionDef) -> set[str]:
    names = set()
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
        elif isinstance(target, ast.Name):
            names.add(target.id)
    return names


def _imported_top_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _parse(path: Path) -> ast.Module:
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise EntryScriptError(f"is not UTF-8 text ({e.reason})", file=path) from None
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise EntryScriptError(f"has a syntax error: {e.msg}", file=path, line=e.lineno) from None


def local_modules(script: Path, tree: ast.Module) -> tuple[Path, ...]:
    """Modules/packages beside the script that it imports (recursively), parsed here for an early syntax error.

    What ships is not decided here: the app gets the script's whole folder (sourcedir.py), so a module loaded
    with importlib or from a folder without ``__init__.py`` ships too, though no import names it.
    """
    root = script.parent
    found: dict[Path, None] = {}
    todo = [tree]
    while todo:
        for name in sorted(_imported_top_names(todo.pop())):
            for candidate in (root / f"{name}.py", root / name):
                if candidate in found or candidate == script:
                    continue
                if candidate.is_file() or (candidate.is_dir() and (candidate / "__init__.py").is_file()):
                    found[candidate] = None
                    if candidate.is_file():
                        todo.append(_parse(candidate))
                    else:
                        todo.extend(_parse(p) for p in sorted(candidate.rglob("*.py")))
    return tuple(sorted(found))


def inspect_entry_script(path: Path) -> EntryScriptInfo:
    """Check that score.py defines init() and a run() the AML contract can call."""
    tree = _parse(path)
    defs: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defs[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    defs[t.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                defs[(a.asname or a.name).split(".")[0]] = node
    for name in ("init", "run"):
        if name not in defs:
            raise EntryScriptError(
                f"does not define {name}() at module level",
                file=path,
                hint="an AML entry script has def init(): (load the model once) and def run(data): (score one input)",
            )
    style = "json"
    run = defs["run"]
    if isinstance(run, ast.AsyncFunctionDef):
        raise EntryScriptError("run() must be a plain function, not async def", file=path, line=run.lineno)
    if isinstance(run, ast.FunctionDef):
        a = run.args
        bad = [x.arg for x in a.posonlyargs]
        bad += [f"*{a.vararg.arg}"] if a.vararg else []
        bad += [f"**{a.kwarg.arg}"] if a.kwarg else []
        if bad:
            raise EntryScriptError(
                f"run() cannot accept positional-only arguments, *args or **kwargs (found {', '.join(bad)})",
                file=path, line=run.lineno, hint="name each input, e.g. def run(data):",
            )
        params = [x.arg for x in a.args + a.kwonlyargs if x.arg != "request_headers"]
        if not params:
            raise EntryScriptError("run() needs a parameter for the input data", file=path, line=run.lineno,
                                   hint="e.g. def run(data):")
        decorators = _decorator_names(run)
        raw = "rawhttp" in decorators
        schema = bool(decorators & {"input_schema", "output_schema"}) and "input_schema" in decorators
        if raw and schema:
            raise EntryScriptError(
                "run() cannot be decorated with both @rawhttp and @input_schema", file=path, line=run.lineno,
                hint="use @rawhttp to read the request yourself, or @input_schema to get typed arguments",
            )
        style = "rawhttp" if raw else "schema" if schema else "json"
    return EntryScriptInfo(path, style, local_modules(path, tree))
