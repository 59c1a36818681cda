"""Static checks of the entry script at package time (nothing of score.py is imported or run).

The runtime shim repeats the checks that need the real objects (decorators) when the app loads;
this catches the common mistakes early, with a line number, before anything is built.
"""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, EntryScriptError
from .sourcedir import file_kind, regular_file

# Methods only a @rawhttp run() can take: azmlinfsrv's /score route lists GET, POST and OPTIONS, and its input
# parsers answer any other method 405 (input_parsers.UnsupportedHTTPMethod); so does the runtime, for the same run().
RAWHTTP_ONLY_METHODS = ("PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class EntryScriptInfo:
    path: Path
    style: str  # json | schema | rawhttp
    local_modules: tuple[Path, ...] = field(default=())
    style_known: bool = True  # False when run() is not a plain def (assigned or imported): its style shows at run time


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
    if not regular_file(path):
        raise EntryScriptError("is not a regular file (a named pipe, a socket or a device?): it cannot be read as "
                               "Python", file=path, hint="replace it with the module's source file")
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
                try:
                    mode = candidate.stat().st_mode
                except OSError:
                    mode = None
                if candidate.suffix == ".py" and mode is not None and not stat.S_ISREG(mode) \
                        and not stat.S_ISDIR(mode):
                    raise EntryScriptError(
                        f"is {file_kind(mode)}, not a regular file, and {script.name} imports it: it cannot be read "
                        "(nor shipped)", file=candidate, hint="replace it with the module's source file")
                if regular_file(candidate) or (candidate.is_dir() and regular_file(candidate / "__init__.py")):
                    found[candidate] = None
                    if candidate.is_file():
                        todo.append(_parse(candidate))
                    else:  # what is not a regular file is left out of the app (sourcedir.NOT_A_FILE): not read here
                        todo.extend(_parse(p) for p in sorted(candidate.rglob("*.py")) if regular_file(p))
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
    style_known = isinstance(run, ast.FunctionDef)
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
    return EntryScriptInfo(path, style, local_modules(path, tree), style_known)


def check_methods(info: EntryScriptInfo, methods: Iterable[str], *, config_file: Path, line: int | None = None
                  ) -> None:
    """Refuse HTTP methods that could never reach this run(): PUT, PATCH and DELETE reach only a @rawhttp run().

    Azure ML's scoring server (azmlinfsrv) routes /score for GET, POST and OPTIONS only and answers any other
    method 405, whatever the entry script; the runtime answers 405 too, for a run() that is not @rawhttp. Listing
    such a method would publish an endpoint (and an OpenAPI operation) that can only fail, so it is an error here.
    """
    if not info.style_known or info.style == "rawhttp":
        return
    bad = [m for m in RAWHTTP_ONLY_METHODS if m in {str(x).upper() for x in methods}]
    if not bad:
        return
    kind = "an @input_schema run()" if info.style == "schema" else "an undecorated run()"
    raise ConfigError(
        f"{', '.join(bad)} cannot reach run() in {info.path.name}: only a @rawhttp run() takes "
        f"{'them' if len(bad) > 1 else 'it'}; {kind} gets GET (the query), POST (the body) and OPTIONS, and Azure "
        "ML's scoring server answers any other method 405, as this app would",
        file=config_file, field="trigger.methods", line=line,
        hint=f"leave {', '.join(bad)} out of trigger.methods (e.g. methods: [GET, POST]), or decorate run() with "
             "@rawhttp to read the request, its method included, yourself")
