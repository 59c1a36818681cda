"""The ONLY module that knows GitHub Actions: inputs, outputs, the step summary, masks, groups, annotations.

Everything else in modelfunc is plain Python; ``scripts/*.py`` (run by ``action.yml``) translate between
this module and the library. Outside Actions (``GITHUB_ACTIONS`` is not ``"true"``) every writer does
nothing — no file is written, no workflow command printed — and only returns the text it would have
written, so a test (or a curious user) can look at it.

Formats follow GitHub's documentation of workflow commands and environment files:

* ``$GITHUB_OUTPUT`` / ``$GITHUB_STEP_SUMMARY`` are appended to; outputs use the multi-line form
  ``name<<DELIMITER`` … ``DELIMITER`` with a random delimiter checked not to occur in the value;
* ``::command key=value,key=value::data`` on stdout, with ``%``, ``\\r``, ``\\n`` escaped in the data
  and additionally ``:`` and ``,`` in property values.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelfuncError

# --------------------------------------------------------------------------------------------- basics


def in_actions(env: Mapping[str, str] | None = None) -> bool:
    """True when running as a step of a GitHub Actions job."""
    return (os.environ if env is None else env).get("GITHUB_ACTIONS") == "true"


def input_env_name(name: str) -> str:
    """The variable GitHub sets for input ``name``: ``INPUT_`` + upper case, spaces → ``_``, hyphens kept."""
    return "INPUT_" + name.replace(" ", "_").upper()


def inputs(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``INPUT_*`` variable as ``{lower-case name: value}`` (values stripped, as actions/core does).

    Composite actions get no ``INPUT_*`` variables for free: ``action.yml`` passes each input through
    ``env:``. It spells them with underscores (``INPUT_MODEL_REPO``) so a shell can read them too, so a
    name is looked up both ways: ``model-repo`` matches ``INPUT_MODEL-REPO`` and ``INPUT_MODEL_REPO``.
    """
    env = os.environ if env is None else env
    return {k[len("INPUT_"):].lower(): v.strip() for k, v in env.items() if k.startswith("INPUT_")}


def get_input(name: str, default: str = "", *, required: bool = False,
              env: Mapping[str, str] | None = None) -> str:
    """One input's value; empty (or unset) means ``default``. ``required`` makes an empty value an error."""
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


MAX_SECONDS = 24 * 3600.0  # as the CLI's --timeout (cli.MAX_TIMEOUT)


def get_float(name: str, default: float, *, env: Mapping[str, str] | None = None) -> float:
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
    from .redact import register

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
    from .redact import forms, secret_parts

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


def _relative_to_workspace(file: str) -> str:
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
    text = _command("error", message, file=_relative_to_workspace(file) if file else None, line=line, title=title)
    if in_actions():
        _print(text)
    return text + "\n"


# ---------------------------------------------------------------------------------- Markdown renderers


def _cell(value: Any, limit: int = 200) -> str:
    """A table cell holding ``value`` as code (JSON, so "1" and 1 differ): HTML-escaped, pipes neutralised."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    text = html.escape(text).replace("|", "&#124;").replace("\r", "").replace("\n", "<br>")
    return f"<code>{text}</code>"


def _text(value: Any) -> str:
    return html.escape(str(value)).replace("|", "&#124;").replace("\n", " ")


def summary_for_test(report: Any) -> str:
    """The sample test as Markdown: the verdict, where and how fast, and expected vs actual.

    ``report`` is a ``blobtest.TestReport`` or its ``to_dict()`` (e.g. read back from a JSON report).
    """
    data: dict[str, Any] = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    passed = bool(data.get("passed"))
    verdict = "✅ PASS" if passed else "❌ FAIL"
    out = [f"### modelfunc sample test: {verdict}", "", "| | |", "|---|---|"]
    out.append(f"| trigger | {_text(data.get('trigger'))} |")
    out.append(f"| target | {_text(data.get('target'))} |")
    out.append(f"| input | {_text(data.get('input'))} |")
    if data.get("output"):
        out.append(f"| output | {_text(data['output'])} |")
    latency = data.get("latency_ms")
    out.append(f"| latency | {f'{latency:.0f} ms' if latency is not None else '—'} |")
    out.append(f"| tolerance | {data.get('tolerance', 0):g} |")
    if data.get("error"):
        out.append(f"| error | {_text(data['error'])} |")
    out += ["", "| path | expected | actual | result |", "|---|---|---|---|"]
    mismatches = data.get("mismatches") or []
    if mismatches:
        for m in mismatches[:50]:
            out.append(f"| {_text(m.get('path') or '(root)')} | {_cell(m.get('expected'))} | "
                       f"{_cell(m.get('actual'))} | {_text(m.get('reason'))} |")
        if len(mismatches) > 50:
            out.append(f"| … | | | {len(mismatches) - 50} more |")
    else:
        result = "match" if passed else "no output"
        out.append(f"| (root) | {_cell(data.get('expected'))} | {_cell(data.get('actual'))} | {result} |")
    return "\n".join(out) + "\n"


def summary_for_image(summary: Mapping[str, Any]) -> str:
    """``image.Packaged.summary()`` as Markdown: the reference to deploy, its digest, layers, self-test."""
    out = ["### modelfunc package", "", "| | |", "|---|---|"]
    reference = summary.get("reference")
    out.append(f"| image | {f'<code>{_text(reference)}</code>' if reference else '(not built)'} |")
    if summary.get("digest"):
        out.append(f"| digest | {_text(summary['digest'])} |")
    if summary.get("tag"):
        out.append(f"| built as | {_text(summary['tag'])} |")
    out.append(f"| app | {_text(summary.get('app'))} |")
    test = summary.get("self_test")
    if test is not None:
        out.append(f"| self-test | {'✅ passed' if test.get('passed') else '❌ failed'}"
                   + (f" in {test['elapsed_ms']} ms" if test.get("elapsed_ms") is not None else "") + " |")
    layers = summary.get("layers") or summary.get("layer_tars") or {}
    if layers:
        pushed = summary.get("pushed_layers") or {}
        out += ["", "| layer | digest | pushed |", "|---|---|---|"]
        for name, digest in layers.items():
            short = str(digest).split(":")[-1][:12]
            size = pushed.get(short)
            out.append(f"| {_text(name)} | {_text(digest)} | {f'{size} bytes' if size is not None else '—'} |")
    return "\n".join(out) + "\n"


def summary_for_golden(golden: Any) -> str:
    """``golden.Golden`` as Markdown: one column per place (run() directly, local host, image, slot)."""
    from .golden import PLACES

    failure = golden.first_failure()
    verdict = "✅ the same answer everywhere" if failure is None else "❌ the answers differ"
    out = [f"### modelfunc golden answer: {verdict}", "",
           f"{_text(golden.sample)}, tolerance {golden.tolerance:g}", "",
           "| | " + " | ".join(PLACES) + " |", "|---|" + "---|" * len(PLACES)]
    for label, cells in golden.rows():
        code = label in ("answer", "SHA-256")  # what came back, as code; verdicts and reasons as text
        out.append(f"| {label} | " + " | ".join(
            f"<code>{_text(c)}</code>" if code and c != "-" and not c.startswith(("not run", "FAILED")) else _text(c)
            for c in cells) + " |")
    if failure:
        out += ["", f"First difference: {_text(failure)}"]
    return "\n".join(out) + "\n"


def publish_golden(golden: Any, path: Path | None = None, *, check: bool = True) -> None:
    """Print the golden table, write it as JSON (output ``golden``), add it to the summary; then (``check``) raise
    GoldenMismatch naming the first place that differs."""
    from . import golden as goldens

    echo(golden.render_text(), file=sys.stdout)
    path = goldens.save(golden, path or default_golden_path())
    set_output("golden", str(path))
    add_summary(summary_for_golden(golden))
    if check:
        golden.check()


def summary_for_deployment(summary: Mapping[str, Any], plan: str = "") -> str:
    """``SlotDeployment.summary()`` (and the plan it carried out) as Markdown: where the image runs, its state."""
    out = ["### modelfunc deploy", "", "| | |", "|---|---|"]
    for label, key in (("app", "app_name"), ("resource group", "resource_group"), ("slot", "slot"),
                       ("image", "image"), ("state", "state"), ("slot URL", "slot_url"), ("app URL", "app_url")):
        value = summary.get(key)
        if value not in (None, ""):
            out.append(f"| {label} | {f'<code>{_text(value)}</code>' if key == 'image' else _text(value)} |")
    functions = summary.get("functions") or []
    out.append(f"| functions | {_text(', '.join(functions)) if functions else '—'} |")
    if plan.strip():
        out += ["", "<details><summary>changes</summary>", "", "```", plan.strip(), "```", "", "</details>"]
    return "\n".join(out) + "\n"


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
    where = f" in `{_relative_to_workspace(file)}`" + (f" line {line}" if line else "") if file else ""
    body = html.escape(full).replace("|", "&#124;").replace("\n", "<br>")
    add_summary(f"### ❌ {_text(heading)}\n\n{body}{where}\n")
    return int(getattr(e, "exit_code", 1))


def script(body: Callable[[], int | None]) -> Callable[[list[str] | None], int]:
    """Make an action step's ``main(argv) -> int`` from ``body``: it takes no arguments (inputs arrive as
    ``INPUT_*``), and a ModelfuncError becomes :func:`fail` (annotation, summary, exit code)."""
    name = Path(getattr(sys.modules.get(body.__module__), "__file__", None) or body.__module__).name

    def main(argv: list[str] | None = None) -> int:
        argv = sys.argv[1:] if argv is None else argv
        if argv:
            print(f"usage: {name}  (no arguments: inputs come from INPUT_* variables, see action.yml)",
                  file=sys.stderr)
            return 2
        try:
            return body() or 0
        except ModelfuncError as e:
            return fail(e)

    main.__doc__ = body.__doc__
    return main


def default_report_path() -> Path:
    """Where a step writes its JSON test report when the report-path input is empty: the runner's temp dir."""
    return Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()) / "modelfunc-report.json"


def default_golden_path() -> Path:
    """Where a step writes the golden table (a step output hands it to the next step): the runner's temp dir."""
    return Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()) / "modelfunc-golden.json"


def publish_test(report: Any, report_path: Path) -> None:
    """Print the report, write it as JSON, set test-result and report-path, add the summary table;
    raise SampleTestFailed when the sample did not round-trip."""
    from .blobtest import write_report
    from .errors import SampleTestFailed

    echo(report.render(), file=sys.stdout)
    write_report(report, report_path)
    set_output("test-result", "pass" if report.passed else "fail")
    set_output("report-path", str(report_path))
    add_summary(summary_for_test(report))
    if not report.passed:
        raise SampleTestFailed(f"the sample did not round-trip: {report.failure()}")
