"""``modelfunc new``: a new model repo from the bundled cookiecutter template (template/ of modelfunc's repo).

It asks only what applies to the chosen trigger, checks each answer as it is given, then runs the template
through cookiecutter's API with exactly those answers (every other value keeps the template's default).

The rules have one home each:

* the questions, their order, their prompt texts, the choices and the defaults: the template's
  ``cookiecutter.json`` (derived defaults, such as the app name made from the project name, are rendered from it
  the way cookiecutter renders them);
* what a good value is: the template's pre-generation hook (``hooks/pre_gen_project.py``), imported here as it is
  in the template and asked about each answer. The hook cannot import modelfunc (it runs in whatever Python runs
  ``cookiecutter``), so the rules live there and modelfunc borrows them, not the other way round. The hook runs
  again when cookiecutter generates the project, as it does for ``cookiecutter <repo> --directory template``.

An answer is used only once it passes those rules, and none can hold Jinja syntax then, so cookiecutter (which
renders the values it is given as templates) gets each one back unchanged. Nothing is written before every answer
is in; when generation fails, whatever it had written is removed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import GenerationError, NewProjectError

HOOK = Path("hooks") / "pre_gen_project.py"
# The template variables that belong to one trigger: the others apply to every project.
TRIGGER_FIELDS = {
    "blob": ("blob_input_path", "blob_output_path"),
    "http": ("http_auth_level",),
    "service-bus-queue": ("service_bus_input_queue", "service_bus_output_queue"),
}


def find_template() -> Path:
    """The bundled template: inside the installed package (``modelfunc/template``, when the wheel ships it there),
    else the ``template/`` of the source checkout modelfunc runs from (``pip install -e .``)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "template", here.parents[1] / "template"):
        if (candidate / "cookiecutter.json").is_file() and (candidate / HOOK).is_file():
            return candidate
    raise NewProjectError("modelfunc's project template is not installed with this modelfunc (looked in "
                          f"{here / 'template'} and {here.parents[1] / 'template'}); run `cookiecutter <modelfunc "
                          "repo> --directory template` instead")


def _import_cookiecutter() -> None:
    try:
        import cookiecutter  # noqa: F401
    except ImportError:
        raise NewProjectError("needs cookiecutter, which is not installed: python -m pip install 'cookiecutter>=2.6'",
                              field="modelfunc new") from None


@dataclass(frozen=True)
class Question:
    name: str
    text: str
    choices: tuple[str, ...] = ()
    descriptions: tuple[str, ...] = ()  # the choices' lines, when they say more than the choice itself


class Template:
    """The template's variables (cookiecutter.json) and its rules (the pre-generation hook)."""

    def __init__(self, root: Path) -> None:
        _import_cookiecutter()
        self.root = root
        try:
            self.raw: dict[str, Any] = json.loads((root / "cookiecutter.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise NewProjectError(f"cannot be read: {e}", file=root / "cookiecutter.json") from None
        self.prompts: dict[str, Any] = self.raw.get("__prompts__", {})
        self.hook = _load_hook(root / HOOK)

    @property
    def variables(self) -> list[str]:
        """The variables cookiecutter asks for, in its order."""
        return [key for key in self.raw if not key.startswith("_")]

    def applies(self, name: str, trigger: str | None) -> bool:
        return all(name not in fields or kind == trigger for kind, fields in TRIGGER_FIELDS.items())

    def trigger_of(self, name: str) -> str | None:
        return next((kind for kind, fields in TRIGGER_FIELDS.items() if name in fields), None)

    def question(self, name: str) -> Question:
        prompt = self.prompts.get(name, name)
        raw = self.raw[name]
        if not isinstance(raw, list):
            return Question(name, prompt if isinstance(prompt, str) else name)
        labels = prompt if isinstance(prompt, dict) else {"__prompt__": prompt}
        lines = tuple(labels[c] for c in raw if labels.get(c, c) != c)
        return Question(name, labels.get("__prompt__", name), tuple(raw), lines)

    def context(self, answers: dict[str, str]) -> dict[str, Any]:
        """Every value as cookiecutter --no-input makes it from these answers: an answer is taken as it is (never
        rendered), every other value is the template's default rendered as cookiecutter renders it (a choice: its
        first), so that defaults made from earlier answers (the app name from the project name) are what
        cookiecutter will make."""
        from cookiecutter.prompt import render_variable
        from cookiecutter.utils import create_env_with_context

        env = create_env_with_context({"cookiecutter": self.raw})
        values: dict[str, Any] = {}
        for key, raw in self.raw.items():
            if key == "__prompts__" or (key.startswith("_") and not key.startswith("__")):
                values[key] = raw
            elif key in answers:
                values[key] = answers[key]
            else:
                values[key] = render_variable(env, raw[0] if isinstance(raw, list) else raw, values)
        return values

    def default(self, name: str, answers: dict[str, str]) -> str:
        return str(self.context(answers)[name])

    def errors(self, name: str, value: str, answers: dict[str, str]) -> list[str]:
        """What the hook says about ``value`` for ``name`` (after the answers before it), without the field's name
        that starts each of its messages."""
        prefix = f"{name}: "
        found = self.hook.validate(self.context({**answers, name: value}))
        return [message.removeprefix(prefix) for message in found if message.startswith(prefix)]

    def template_syntax(self, value: str) -> bool:
        """Whether cookiecutter would render ``value`` into something else (it renders the values it is given)."""
        from cookiecutter.utils import create_env_with_context

        env = create_env_with_context({"cookiecutter": self.raw})
        return any(mark in value for mark in (env.variable_start_string, env.block_start_string,
                                              env.comment_start_string))


def _load_hook(path: Path) -> ModuleType:
    """The pre-generation hook as a module: unrendered, its one Jinja expression runs only as cookiecutter's hook."""
    spec = importlib.util.spec_from_file_location("_modelfunc_template_pre_gen", path)
    if spec is None or spec.loader is None:
        raise NewProjectError("cannot be loaded", file=path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "validate", None)):
        raise NewProjectError("has no validate(values): this modelfunc does not match its template", file=path)
    return module


# ---------------------------------------------------------------------------------- asking


@dataclass
class Asker:
    """Asks on stdin (a terminal or not: a here-doc of answers works). An empty answer takes the default shown.
    When stdin ends before the questions do (``</dev/null``, a short here-doc) and it is not a terminal, every
    question left takes the template's default, as ``cookiecutter --no-input`` does; at a terminal, end of input
    aborts. ``--no-input`` asks nothing at all."""

    enabled: bool
    tty: bool = field(default_factory=lambda: bool(sys.stdin and sys.stdin.isatty()))
    ended: bool = False

    def ask(self, question: Question, default: str, check: Callable[[str], list[str]]) -> str | None:
        """The answer, or None when stdin has ended (the caller takes the default)."""
        import click

        if not self.enabled or self.ended:
            return None

        def value_proc(value: str) -> str:
            if not self.tty:
                click.echo(value)  # the answer read, on the prompt's line, as a terminal would show it
            errors = check(value)
            if errors:
                raise click.UsageError(errors[0])  # click prints "Error: <message>" and asks again
            return value

        for line in question.descriptions:
            click.echo(f"  {line}")
        text = question.text + (f" ({', '.join(question.choices)})" if question.choices else "")
        try:
            return click.prompt(text, default=default, value_proc=value_proc)
        except click.exceptions.Abort as e:
            if self.tty or not isinstance(e.__context__, EOFError):
                raise
            click.echo()  # ends the prompt's line
            click.echo("note: stdin ended: the questions left take the template's defaults", err=True)
            self.ended = True
            return None


# ---------------------------------------------------------------------------------- the command


def _check_writable(output_dir: Path) -> None:
    """Refused before any question: a DIR that could never hold the project."""
    for parent in (output_dir, *output_dir.parents):
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise NewProjectError(f"{str(output_dir)!r} cannot be made: {parent} is a file, not a folder", field="DIR")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise NewProjectError(f"{str(output_dir)!r} cannot be written: the folder {parent} is not writable",
                                  field="DIR")
        return


def collect(template: Template, output_dir: Path, given: dict[str, str], options: dict[str, str],
            asker: Asker) -> dict[str, str]:
    """The answers that apply to the chosen trigger: each given one (an option) checked, each other one asked (or,
    not asked, the template's default checked)."""
    answers: dict[str, str] = {}

    def check(name: str) -> Callable[[str], list[str]]:
        def errors(value: str) -> list[str]:
            found = template.errors(name, value, answers)
            if not found and name == "project_name":
                folder = output_dir / template.context({**answers, name: value})["__project_slug"]
                if folder.exists() or folder.is_symlink():
                    found = [f"{value!r} makes the project folder {folder}, which exists already; give another "
                             "name (or another DIR)"]
            return found
        return errors

    for name in template.variables:
        if not template.applies(name, answers.get("trigger")):
            continue
        option = options.get(name, name)
        if name in given:
            errors = check(name)(given[name])
            if errors:
                raise NewProjectError(errors[0], field=option)
            answers[name] = given[name]
        else:
            default = template.default(name, answers)
            answer = asker.ask(template.question(name), default, check(name))
            if answer is None:
                errors = check(name)(default)
                if errors:
                    raise NewProjectError(f"the default {errors[0]}", field=option)
                answer = default
            answers[name] = answer
        if name == "trigger":
            for other in given:
                kind = template.trigger_of(other)
                if kind is not None and kind != answers["trigger"]:
                    raise NewProjectError(f"is for the {kind} trigger; this project's trigger is "
                                          f"{answers['trigger']}", field=options.get(other, other))
    return answers


@contextlib.contextmanager
def _own_temp_dir() -> Iterator[Path]:
    """cookiecutter leaves each rendered hook script in the temp dir, and its replay file in the home directory:
    keep both in a folder of ours, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="modelfunc-new-") as tmp:
        saved, tempfile.tempdir = tempfile.tempdir, tmp
        try:
            yield Path(tmp)
        finally:
            tempfile.tempdir = saved


def generate(template: Template, answers: dict[str, str], output_dir: Path) -> Path:
    """Run the template through cookiecutter with the answers; on any failure remove what it had written."""
    from cookiecutter.exceptions import CookiecutterException, FailedHookException
    from cookiecutter.main import cookiecutter

    for name, value in answers.items():  # the checks guarantee it; cookiecutter would render these
        if template.template_syntax(value):
            raise NewProjectError(f"{value!r} holds template syntax", field=name)
    project = output_dir / template.context(answers)["__project_slug"]
    created = next((p for p in reversed((output_dir, *output_dir.parents)) if not p.exists()), None)
    sys.stdout.flush()  # the hooks write to the same stdout from a child process
    try:
        with _own_temp_dir() as tmp:
            result = cookiecutter(str(template.root), no_input=True, extra_context=answers,
                                  output_dir=str(output_dir),
                                  default_config={"cookiecutters_dir": str(tmp / "cookiecutters"),
                                                  "replay_dir": str(tmp / "replay")})
    except BaseException as e:
        for path in (project, created):
            if path is not None and path.exists():
                shutil.rmtree(path, ignore_errors=True)
        if isinstance(e, FailedHookException):
            raise GenerationError("the template refused the values (see above): nothing was generated") from None
        if isinstance(e, (CookiecutterException, OSError)):
            raise GenerationError(f"cookiecutter failed: {e}: nothing was generated") from None
        raise
    return Path(result)


def new(output_dir: Path, given: dict[str, str], *, options: dict[str, str], ask: bool,
        template_root: Path | None = None) -> Path:
    """Ask, check, generate: the new project's folder."""
    _check_writable(output_dir)
    template = Template(template_root or find_template())
    unknown = sorted(set(given) - set(template.variables))
    if unknown:
        raise NewProjectError("is not a variable of this modelfunc's template", field=options.get(unknown[0],
                                                                                                 unknown[0]))
    answers = collect(template, output_dir, given, options, Asker(enabled=ask))
    return generate(template, answers, output_dir)
