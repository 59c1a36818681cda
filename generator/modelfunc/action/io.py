"""The runner's protocol: inputs, outputs, the step summary, masks, groups, annotations.

The only module that reads or writes what the Actions runner provides (``INPUT_*``, ``$GITHUB_OUTPUT``,
``$GITHUB_STEP_SUMMARY``, ``$GITHUB_WORKSPACE``, ``$GITHUB_SHA``, ``$RUNNER_TEMP``) or prints workflow commands;
the job's OIDC ID-token request (``ACTIONS_ID_TOKEN_*``) is :mod:`.signin`'s.
Outside Actions (``GITHUB_ACTIONS`` is not ``"true"``) every writer does nothing — no file is written, no
workflow command printed — and only returns the text it would have written, so a test (or a curious user) can
look at it.

Formats follow GitHub's documentation of workflow commands and environment files:

* ``$GITHUB_OUTPUT`` / ``$GITHUB_STEP_SUMMARY`` are appended to; outputs use the multi-line form
  ``name<<DELIMITER`` … ``DELIMITER`` with a random delimiter checked not to occur in the value;
* ``::command key=value,key=value::data`` on stdout, with ``%``, ``\\r``, ``\\n`` escaped in the data
  and additionally ``:`` and ``,`` in property values.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelfuncError
from ..useroptions import MAX_SECONDS
from .summaries import summary_for_error

# --------------------------------------------------------------------------------------------- inputs


def in_actions(env: Mapping[str, str] | None = None) -> bool:
    """True when running as a step of a GitHub Actions job."""
    return (os.environ if env is None else env).get("GITHUB_ACTIONS") == "true"


def input_env_name(name: str) -> str:
    """The variable GitHub sets for input ``name``: ``INPUT_`` + upper case, spaces → ``_``, hyphens kept."""
    return "INPUT_" + name.replace(" ", "_").upper()


def get_input(name: str, default: str = "", *, required: bool = False,
              env: Mapping[str, str] | None = None) -> str:
    """One input's value (stripped, as actions/core does); empty (or unset) means ``default``. ``required`` makes
    an empty value an error.

    Composite actions get no ``INPUT_*`` variables for free: ``action.yml`` passes each input through ``env:``,
    spelt with underscores (``INPUT_MODEL_REPO``) so a shell can read them too; so a name is looked up both
    ways: ``model-repo`` matches ``INPUT_MODEL-REPO`` and ``INPUT_MODEL_REPO``.
    """
    env = os.environ if env is None else env
    exact = input_env_name(name)
    for key in (exact, exact.replace("-", "_")):
        value = env.get(key, "").strip()
        if value:
            return value
    if required:
        raise ConfigError("is required and was not given", field=name,
                          hint=f"set `with: {name}: ...` where the action is used")
    return default


def get_optional(name: str, *, env: Mapping[str, str] | None = None) -> str | None:
    """One input's value, None when empty: the CLI's "option not given"."""
    return get_input(name, env=env) or None


_TRUE, _FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")


def get_bool(name: str, default: bool, *, env: Mapping[str, str] | None = None) -> bool:
    """A boolean input as actions/core reads one (YAML 1.2 core schema: true/True/TRUE, false/False/FALSE)."""
    value = get_input(name, env=env)
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{value!r} is not a boolean: use true or false", field=name)


def get_float(name: str, default: float, *, env: Mapping[str, str] | None = None) -> float:
    """A number of seconds, as the CLI's timeouts take one (greater than 0, at most a day)."""
    value = get_input(name, env=env)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number <= MAX_SECONDS:  # nan and inf too: a wait that never ends is a hang
        raise ConfigError(f"{value!r} is not a number of seconds greater than 0 and at most {MAX_SECONDS:.0f} "
                          "(a day), e.g. 60", field=name)
    return number


def commit() -> str | None:
    """The commit the workflow runs for (``$GITHUB_SHA``): the image's tag."""
    return os.environ.get("GITHUB_SHA") or None


def temp_path(name: str) -> Path:
    """A file in the runner's temp dir (``$RUNNER_TEMP``, else the system's): where a step leaves what it hands on."""
    return Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()) / name


def default_report_path() -> Path:
    """Where a step writes its JSON test report when the report-path input is empty."""
    return temp_path("modelfunc-report.json")


def default_golden_path() -> Path:
    """Where a step writes the golden table (a step output hands it to the next step)."""
    return temp_path("modelfunc-golden.json")


# ------------------------------------------------------------------------------------------ escaping


def escape_data(text: str) -> str:
    """Escape a workflow command's data (after ``::``): ``%``, ``\\r``, ``\\n``."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: as data, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, data: str, **properties: object) -> str:
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items() if v not in (None, ""))
    return f"::{name}{' ' + props if props else ''}::{escape_data(data)}"


def _print(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------------------------------- writers


def _append(variable: str, text: str) -> None:
    path = os.environ.get(variable)
    if not path:
        raise RuntimeError(f"{variable} is not set: is this a GitHub Actions step?")
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def set_output(name: str, value: str) -> str:
    """Append ``name`` = ``value`` to ``$GITHUB_OUTPUT`` in the multi-line-safe form; returns the text."""
    value = str(value)
    while True:
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        if delimiter not in value and delimiter not in name:
            break
    text = f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    if in_actions():
        _append("GITHUB_OUTPUT", text)
    return text


def add_summary(markdown: str) -> str:
    """Append Markdown to the job's step summary (``$GITHUB_STEP_SUMMARY``); returns the text."""
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    if in_actions():
        _append("GITHUB_STEP_SUMMARY", text)
    return text


def mask(secret: str | None) -> str:
    """Tell the runner to hide ``secret`` in the log: one ``::add-mask::`` per non-blank line; returns them.

    The secret is registered with modelfunc's redactor too, so what modelfunc itself prints or writes (reports,
    summaries, errors) leaves it out before the runner's mask is needed."""
    if not secret:
        return ""
    from ..redact import register

    register(secret)
    lines = [_command("add-mask", line) for line in secret.splitlines() if line.strip()]
    text = "".join(line + "\n" for line in lines)
    if in_actions():
        for line in lines:
            _print(line)
    return text


def mask_connection_string(value: str | None) -> str:
    """Mask a connection string, and each secret part of it on its own, in every form it may be printed in.

    The parts (``redact.secret_parts``): the account key, a SAS token and — since the storage SDK prints a SAS
    re-ordered, inside a URL — its signature alone; each in every form ``redact.forms`` knows (raw, URL-encoded,
    JSON-escaped), because the runner matches a mask only as written. The redactor learns them too."""
    if not value:
        return ""
    from ..redact import forms, secret_parts

    parts = secret_parts(value) or [value]
    masks = [value, *(form for part in parts for form in forms(part))]
    return "".join(mask(m) for m in dict.fromkeys(masks))


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    """A collapsible group in the log (``::group::`` … ``::endgroup::``)."""
    if in_actions():
        _print(_command("group", title))
    try:
        yield
    finally:
        if in_actions():
            _print("::endgroup::")


def _looks_like_a_command(line: str) -> bool:
    line = line.lstrip()  # the runner trims leading white space before it looks for a command
    return line.startswith(("::", "##["))


def echo(message: str, *, file: Any = None) -> str:
    """Print text that may hold user data (paths, names, values) to stderr, never as a workflow command.

    The runner takes any line that starts with ``::`` (or the older ``##[``) as a command, so a path or an input
    with a newline in it could otherwise raise an annotation, register a mask or end a group. In Actions such
    text is printed between ``::stop-commands::TOKEN`` and ``::TOKEN::`` (with a token that is not in it);
    returns what was printed.
    """
    text = message
    if in_actions() and any(_looks_like_a_command(line) for line in message.splitlines()):
        token = uuid.uuid4().hex
        while token in message:
            token = uuid.uuid4().hex
        text = f"::stop-commands::{token}\n{message}\n::{token}::"
    print(text, file=file or sys.stderr, flush=True)
    return text


@contextlib.contextmanager
def phases() -> Iterator[Callable[[str], None]]:
    """A progress callback for the core: each ``==> step`` line opens a log group (closing the previous one);
    other lines are printed inside it. Outside Actions the lines are printed as they are."""
    state = {"open": False}

    def progress(message: str) -> None:
        if in_actions() and message.startswith("==> "):
            if state["open"]:
                _print("::endgroup::")
            _print(_command("group", message[4:]))
            state["open"] = True
        else:
            echo(message)

    try:
        yield progress
    finally:
        if state["open"]:
            _print("::endgroup::")


def relative_to_workspace(file: str) -> str:
    """Annotations point at files relative to the repository root (``$GITHUB_WORKSPACE``) when inside it."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if workspace:
        try:
            return Path(file).resolve().relative_to(Path(workspace).resolve()).as_posix()
        except ValueError:
            pass
    return file


def error(message: str, *, title: str | None = None, file: str | None = None, line: int | None = None) -> str:
    """A titled error annotation (``::error file=…,line=…,title=…::message``); returns the command."""
    text = _command("error", message, file=relative_to_workspace(file) if file else None, line=line, title=title)
    if in_actions():
        _print(text)
    return text + "\n"


# ------------------------------------------------------------------------------------ a step's frame


def fail(e: Exception, *, title: str = "modelfunc") -> int:
    """Report a ModelfuncError: a titled annotation at its file/line, the summary, and its exit code."""
    file = getattr(e, "file", None)
    line = getattr(e, "line", None)
    field = getattr(e, "field", None)
    message = getattr(e, "message", None) or str(e)
    hint = getattr(e, "hint", None)
    full = f"{field}: {message}" if field else message
    if hint:
        full += f"\nhint: {hint}"
    heading = f"{title}: {type(e).__name__}"
    echo(f"error: {e}")
    error(full, title=heading, file=file, line=line)
    add_summary(summary_for_error(heading, full, relative_to_workspace(file) if file else None, line))
    return int(getattr(e, "exit_code", 1))


def run(step: Callable[[], int | None], argv: list[str] | None = None, *, name: str | None = None) -> int:
    """Run an action step as its script's ``main(argv)``: it takes no arguments (inputs arrive as ``INPUT_*``),
    and a ModelfuncError becomes :func:`fail` (annotation, summary, exit code)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        script = name or Path(sys.argv[0]).name
        print(f"usage: {script}  (no arguments: inputs come from INPUT_* variables, see action.yml)",
              file=sys.stderr)
        return 2
    try:
        return step() or 0
    except ModelfuncError as e:
        return fail(e)
