"""The rooms of generator/modelfunc and what each may import (docs/architecture.md), checked on the source.

Every .py is parsed; relative imports are resolved, and imports inside functions (and under ``TYPE_CHECKING``) count
as much as those at the top: a lazy import is still an arrow. Each rule is one test whose failure names the file,
the line and the forbidden import.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from support.core import ROOT

GENERATOR = ROOT / "generator"
ROOT = GENERATOR / "modelfunc"
MAX_LINES = 450
ONE_FILE_ON_PURPOSE = {"runtime/modelfunc_runtime.py"}  # copied into every app as one file

# room -> the rooms it may import (its own included): the levels of docs/architecture.md, bottom to top: runtime;
# core; azure and localhost (which know nothing of each other); options (useroptions.py: what a user asks for made
# into the core's options, shared by the two front doors); the action wing; the cli (which signs in through the
# action wing's sign-in, so that in a workflow it uses the job's OIDC token as the action does).
MAY_IMPORT = {
    "runtime": {"runtime"},
    "core": {"runtime", "core"},
    "localhost": {"core", "localhost"},  # and of the core only LOCALHOST_MAY_USE
    "azure": {"runtime", "core", "azure"},
    "options": {"runtime", "core", "azure", "localhost", "options"},
    "action": {"runtime", "core", "localhost", "azure", "options", "action"},
    "cli": {"runtime", "core", "localhost", "azure", "options", "action", "cli"},
}
# What the local host's process may import of the rest of modelfunc: it runs in the app's environment, where the
# host's code reaches modelfunc's own packages only (localhost/isolation.py), and imports no click, pydantic, YAML.
LOCALHOST_MAY_USE = {"modelfunc", "modelfunc.errors", "modelfunc.blobpath", "modelfunc.redact", "modelfunc.storage",
                     "modelfunc.azurite", "modelfunc.hostboot"}
# The GitHub Actions runner's variables (GITHUB_OUTPUT, ACTIONS_ID_TOKEN_REQUEST_URL, RUNNER_TEMP, ...).
ACTIONS_VARIABLE = re.compile(r"(GITHUB|ACTIONS|RUNNER)_[A-Z0-9_]+")

def room(module: str) -> str:
    """The room of a module (``modelfunc.azure.flex`` -> azure); what is not in a named room is the core."""
    head = module.split(".")[1] if "." in module else ""
    if head == "runtime" or head.startswith("modelfunc_"):
        return "runtime"
    if head in ("localhost", "azure"):
        return head
    if head == "useroptions":
        return "options"
    if head == "action":
        return "action"
    if head in ("cli", "__main__"):
        return "cli"
    return "core"


def module_of(path: Path) -> str:
    parts = list(path.relative_to(GENERATOR).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def exists(module: str) -> bool:
    base = GENERATOR.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


@cache
def bound_in_package(package: str) -> frozenset[str]:
    """The names a package's ``__init__`` binds (defines, assigns or imports)."""
    init = GENERATOR.joinpath(*package.split("."), "__init__.py")
    names: set[str] = set()
    for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def imported_from(base: str, name: str) -> str:
    """The module ``from base import name`` imports: ``base.name`` when that is a module, else ``base`` when
    ``base`` is a module or its package defines ``name`` (else ``base.name``, which does not exist: the first
    test says so)."""
    if exists(f"{base}.{name}"):
        return f"{base}.{name}"
    package = GENERATOR.joinpath(*base.split("."), "__init__.py").is_file()
    if not package or name in bound_in_package(base):
        return base
    return f"{base}.{name}"


@dataclass(frozen=True)
class Import:
    file: str  # relative to generator/modelfunc
    line: int
    source: str  # the statement as written
    target: str  # the modelfunc module it imports

    @property
    def importer(self) -> str:
        """The room of the importing file."""
        return room(module_of(ROOT / self.file))

    @property
    def key(self) -> tuple[str, str]:
        return self.file, room(self.target)

    def __str__(self) -> str:
        return f"generator/modelfunc/{self.file}:{self.line}: `{self.source}` imports {self.target}"


def _sibling(name: str) -> str | None:
    """A runtime module imported by its own name (``import modelfunc_openapi``), as the copy in an app does."""
    found = name.startswith("modelfunc_") and (ROOT / "runtime" / f"{name}.py").is_file()
    return f"modelfunc.runtime.{name}" if found else None


@cache
def parsed() -> dict[str, ast.Module | SyntaxError]:
    trees: dict[str, ast.Module | SyntaxError] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        try:
            trees[rel] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as e:
            trees[rel] = e
    return trees


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a modelfunc module in generator/modelfunc, wherever it stands in its file."""
    found = []
    for rel, tree in parsed().items():
        if isinstance(tree, SyntaxError):
            continue
        module = module_of(ROOT / rel)
        package = module if rel.endswith("__init__.py") else module.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "modelfunc" or alias.name.startswith("modelfunc."):
                        targets.append(alias.name)
                    elif _sibling(alias.name):
                        targets.append(_sibling(alias.name))  # type: ignore[arg-type]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                elif node.module and (node.module == "modelfunc" or node.module.startswith("modelfunc.")):
                    base = node.module
                elif node.module and _sibling(node.module):
                    base = _sibling(node.module)  # type: ignore[assignment]
                else:
                    continue
                targets += [imported_from(base, a.name) for a in node.names]
            found += [Import(rel, node.lineno, ast.unparse(node), t) for t in dict.fromkeys(targets)]
    return tuple(found)


# Each rule: (key, what breaks it) for every place that breaks it.
Violation = tuple[tuple[str, str], str]


def runtime_imports() -> list[Violation]:
    return [(imp.key, str(imp)) for imp in imports() if imp.importer == "runtime" and room(imp.target) != "runtime"]


def localhost_imports() -> list[Violation]:
    return [(imp.key, str(imp)) for imp in imports() if imp.importer == "localhost"
            and room(imp.target) != "localhost" and imp.target not in LOCALHOST_MAY_USE]


def core_imports_of_front_doors() -> list[Violation]:
    return [(imp.key, str(imp)) for imp in imports() if imp.importer in ("runtime", "core")
            and room(imp.target) in ("options", "action", "cli")]


def arrows_up_or_across() -> list[Violation]:
    return [(imp.key, f"{imp} ({imp.importer} -> {room(imp.target)}; {imp.importer} may import "
                      f"{', '.join(sorted(MAY_IMPORT[imp.importer]))})")
            for imp in imports() if room(imp.target) not in MAY_IMPORT[imp.importer]]


def actions_variables() -> list[Violation]:
    """Where a module outside the action wing names a GitHub Actions variable (a string that is exactly one;
    docstrings and messages that mention one do not count)."""
    found = []
    for rel, tree in parsed().items():
        if isinstance(tree, SyntaxError) or room(module_of(ROOT / rel)) == "action":
            continue
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        found += [((rel, "actions variables"), f"generator/modelfunc/{rel}:{node.lineno}: {node.value!r}")
                  for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and ACTIONS_VARIABLE.fullmatch(node.value)]
    return found


def _check(rule: str, violations: list[Violation]) -> None:
    bad = [message for _, message in violations]
    assert not bad, f"{rule}:\n" + "\n".join(f"  {b}" for b in bad)


def test_every_module_parses_and_every_import_names_a_module_that_exists() -> None:
    """The rules below read the source: a file they cannot parse, or an import they cannot resolve, escapes them."""
    broken = [(("", ""), f"generator/modelfunc/{rel}:{tree.lineno}: {tree.msg}") for rel, tree in parsed().items()
              if isinstance(tree, SyntaxError)]
    broken += [(imp.key, f"{imp} (no such module)") for imp in imports() if not exists(imp.target)]
    _check("the rules cannot read these", broken)


def test_runtime_imports_nothing_from_modelfunc() -> None:
    """runtime/ is copied into every app, where modelfunc is not installed: it imports its own modules only."""
    _check("runtime/ is copied into every app and may import only runtime/ modules", runtime_imports())


def test_localhost_is_self_contained() -> None:
    """The local host runs in the app's environment: of the rest of modelfunc it imports only a few leaf modules."""
    _check(f"localhost/ may import only localhost/ and {', '.join(sorted(LOCALHOST_MAY_USE))}", localhost_imports())


def test_the_core_never_imports_the_action_wing_or_the_cli() -> None:
    _check("the core (and runtime/) must not import the action wing (action/), the cli or what they share "
           "(useroptions.py): they are the front doors built on it", core_imports_of_front_doors())


def test_no_arrow_points_up_or_across() -> None:
    """Each room imports only its own and the rooms below it (MAY_IMPORT): azure/ and localhost/ know nothing of
    each other, and the action wing does not import the cli."""
    _check("an import points up or across the rooms of docs/architecture.md", arrows_up_or_across())


def test_only_the_action_wing_reads_github_actions_variables() -> None:
    _check("only the action wing (action/) reads GitHub Actions variables; the core takes what they say "
           "(a credential, a path) as an argument", actions_variables())


def test_no_module_is_over_450_lines() -> None:
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in ONE_FILE_ON_PURPOSE:
            long.append(f"generator/modelfunc/{rel}: {lines} lines")
    assert not long, (f"no module may be over {MAX_LINES} lines but {', '.join(sorted(ONE_FILE_ON_PURPOSE))} (split "
                      "it along its seams):\n" + "\n".join(f"  {b}" for b in long))


# ------------------------------------------------------------------------------------------ the errors


def test_every_error_for_a_person_is_defined_in_errors_py() -> None:
    """A class whose bases include one of errors.py's (ModelfuncError and below) is defined in errors.py only."""
    errors_tree = ast.parse((ROOT / "errors.py").read_text(encoding="utf-8"))
    ours = {node.name for node in errors_tree.body if isinstance(node, ast.ClassDef)}
    elsewhere = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "errors.py" and path.parent == ROOT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                         for b in node.bases}
                if bases & ours and not path.relative_to(ROOT).parts[0] == "runtime":
                    elsewhere.append(f"generator/modelfunc/{path.relative_to(ROOT).as_posix()}:{node.lineno}: "
                                     f"class {node.name}({', '.join(sorted(bases))})")
    assert not elsewhere, "define these in errors.py (and import them where they were):\n" + "\n".join(elsewhere)


def test_the_hierarchy_drawn_in_errors_py_is_the_one_defined() -> None:
    """errors.py's docstring draws its classes as a tree with exit codes: the drawing and the code agree."""
    from modelfunc import errors

    drawn = re.findall(r"^    ([│ ]*(?:[├└]── )?)(\w+) \[(\d)\]", errors.__doc__, re.M)
    assert drawn, "no tree in errors.py's docstring"
    parents: list[str] = []
    seen = set()
    for indent, name, code in drawn:
        depth = len(indent) // 4
        parents[depth:] = [name]
        cls = getattr(errors, name)
        assert cls.exit_code == int(code), f"{name}: drawn [{code}], exit_code {cls.exit_code}"
        if depth:
            assert cls.__bases__ == (getattr(errors, parents[depth - 1]),), f"{name}: drawn under {parents[depth - 1]}"
        seen.add(name)
    defined = {name for name, value in vars(errors).items()
               if isinstance(value, type) and issubclass(value, errors.ModelfuncError)}
    assert defined == seen, f"defined but not drawn: {defined - seen}; drawn but not defined: {seen - defined}"
