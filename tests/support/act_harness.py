"""An act-compatible runner for a composite ``action.yml``: what GitHub's runner (and nektos/act) does with it.

* Expressions (``${{ … }}`` in ``with:``, ``env:``, ``outputs:`` and input defaults, and ``if:``) are evaluated
  by GitHub's own evaluator, ``@actions/expressions`` (act_expressions_server.mjs, one node process for the
  session, each step's expressions in one request), over the contexts a composite
  action sees: ``inputs``, ``steps``, ``github`` (``action_path``, ``workspace``, …), ``runner`` (``temp``, …),
  ``env``. An ``if:`` without a status function is ``success() && (…)``, as on GitHub.
* ``run:`` steps run as GitHub runs ``shell: bash``: the script written to a file, ``bash --noprofile --norc
  -eo pipefail FILE``, in the workspace, with the file-command protocol — fresh ``GITHUB_OUTPUT``,
  ``GITHUB_ENV``, ``GITHUB_PATH``, ``GITHUB_STEP_SUMMARY`` (and ``GITHUB_STATE``) files per step, read back
  after it: outputs become ``steps.<id>.outputs``, env lines reach later steps, path lines are prepended to
  their ``PATH``, the summary is appended to the job's.
* The log is processed like the runner's: workflow commands (``::add-mask::``, ``::group::``, ``::error …::``,
  ``::stop-commands::``) on stdout and stderr; every registered secret is replaced by ``***`` in the log.
  ``raw`` keeps the unmasked stream so tests can prove a secret appears nowhere but in its mask command.
* ``uses:`` steps the harness knows are stood in for: ``actions/setup-python`` (the interpreter running the
  tests; its path as ``python-path``) and ``actions/cache`` (a miss). Any other ``uses:`` is an error.
* Each step is started with ``subprocess.Popen``, so under pytest-subprocess's ``fp`` a test can fake a step
  that cannot run here (``runner.command(step_id)`` is its exact command line) and let the others run.
  Every step's command line, environment and script are recorded in ``ActionRun.steps``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support.core import ROOT, copy_example

HERE = Path(__file__).resolve().parent
EVALUATOR = HERE / "act_expressions_server.mjs"
# The real Popen, kept where pytest-subprocess's patching of module-level aliases does not reach: the evaluator
# is part of the harness, not of the action under test, so it never shows up in (or needs registering with) ``fp``.
_REAL = {"Popen": subprocess.Popen}
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]  # GitHub's `shell: bash`, + the script file
STATUS_FUNCTION = re.compile(r"\b(success|failure|always|cancelled)\s*\(", re.IGNORECASE)
COMMAND = re.compile(r"^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$")  # ::name k=v,k=v::data
COMMAND_V1 = re.compile(r"^##\[([A-Za-z-]+)(?: ([^\]]*))?\](.*)$")  # ##[name k=v;k=v]data, still honoured


class HarnessError(Exception):
    """The action uses something this harness does not implement (so a test cannot silently pass)."""


# ----------------------------------------------------------------------------------- expressions


def split_template(text: str) -> list[tuple[bool, str]]:
    """``"a ${{ x }} b"`` → ``[(False, "a "), (True, " x "), (False, " b")]``; quotes inside are respected."""
    parts: list[tuple[bool, str]] = []
    i = 0
    while True:
        start = text.find("${{", i)
        if start < 0:
            parts.append((False, text[i:]))
            return [p for p in parts if p[1] or p[0]]
        parts.append((False, text[i:start]))
        j = start + 3
        in_string = False
        while j < len(text):
            if text[j] == "'":
                in_string = not in_string  # '' (an escaped quote) toggles twice
            elif not in_string and text.startswith("}}", j):
                break
            j += 1
        else:
            raise HarnessError(f"unterminated expression in {text!r}")
        parts.append((True, text[start + 3:j]))
        i = j + 2


class _Evaluator:
    """The evaluator process (act_expressions_server.mjs), started on first need and kept for the session: one
    request and one answer a line. Started with the real Popen, so ``fp`` never sees it."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._said = ""  # what the last process wrote to stderr

    def _start(self) -> subprocess.Popen[str]:
        node = shutil.which("node")
        if not node:
            raise HarnessError("node is not installed: the harness evaluates expressions with @actions/expressions")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - read when it fails, closed with it
        return _REAL["Popen"]([node, str(EVALUATOR)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=self._stderr, text=True, encoding="utf-8", bufsize=1)

    def ask(self, request: Mapping[str, Any], timeout: float = 60) -> Any:
        text = json.dumps(request) + "\n"
        with self._lock:
            for attempt in (1, 2):  # a process that ended since the last request is replaced once
                if self._proc is not None and self._proc.poll() is not None:
                    self.close()
                if self._proc is None:
                    self._proc = self._start()
                proc = self._proc
                assert proc.stdin and proc.stdout
                ended = False
                try:
                    proc.stdin.write(text)
                    proc.stdin.flush()
                    ready, _, _ = select.select([proc.stdout], [], [], timeout)
                    line = proc.stdout.readline() if ready else ""
                    ended = bool(ready)  # readable and no line: the end of its output, it has ended
                except OSError:  # BrokenPipeError: it had ended
                    line, ended = "", True
                if line:
                    break
                self.close(kill=True)
                if not ended or attempt == 2:
                    raise HarnessError(f"the expression evaluator failed (no answer in {timeout:.0f} s or it "
                                       f"exited {proc.returncode}): {self._said}")
        answer = json.loads(line)
        if isinstance(answer, dict):
            raise HarnessError(f"the expression evaluator failed: {answer.get('fatal')}")
        return answer

    def close(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        with contextlib.suppress(OSError):
            proc.stdin.close()  # it ends when its stdin does
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        self._stderr.seek(0)
        self._said = self._stderr.read().decode("utf-8", "replace").strip()
        self._stderr.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


_EVALUATOR = _Evaluator()
atexit.register(_EVALUATOR.close)


def evaluator_pid() -> int | None:
    """The evaluator process's id (None before the first evaluation)."""
    return _EVALUATOR.pid


def evaluate(expressions: list[str], contexts: Mapping[str, Any], *, failed: bool = False) -> list[dict[str, Any]]:
    """Evaluate expressions with @actions/expressions; raise HarnessError on a parse or evaluation error."""
    if not expressions:
        return []
    request = {"contexts": contexts, "status": "failure" if failed else "success", "expressions": expressions}
    results = _EVALUATOR.ask(request)
    if len(results) != len(expressions):
        raise HarnessError(f"the expression evaluator answered {len(results)} results for {len(expressions)}")
    errors = [r["error"] for r in results if not r["ok"]]
    if errors:
        raise HarnessError("; ".join(errors))
    return results


def interpolate(value: Any, contexts: Mapping[str, Any], *, failed: bool = False) -> str:
    """A YAML value with ``${{ }}`` parts, as the runner turns it into a string."""
    return interpolate_all({"": value}, contexts, failed=failed)[""]


def interpolate_all(values: Mapping[Any, Any], contexts: Mapping[str, Any], *, failed: bool = False) -> dict[Any, str]:
    """Several values over the same contexts (a step's ``env:``, ``with:``, ``run:``), each as :func:`interpolate`
    turns it into a string, their expressions evaluated in one request to the evaluator (not one per value)."""
    out: dict[Any, str] = {}
    templates: dict[Any, list[tuple[bool, str]]] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif value is None:
            out[key] = ""
        else:
            templates[key] = split_template(str(value))
    results = iter(evaluate([p for parts in templates.values() for is_expr, p in parts if is_expr], contexts,
                            failed=failed))
    for key, parts in templates.items():
        out[key] = "".join(next(results)["string"] if is_expr else p for is_expr, p in parts)
    return {key: out[key] for key in values}


def condition(value: Any, contexts: Mapping[str, Any], *, failed: bool) -> bool:
    """A step's ``if:``: absent → success(); no status function → ``success() && (…)``."""
    if value is None:
        return not failed
    if isinstance(value, bool):
        return value and not failed
    text = str(value).strip()
    parts = split_template(text)
    if len(parts) == 1 and parts[0][0]:
        text = parts[0][1].strip()
    elif any(is_expr for is_expr, _ in parts):
        raise HarnessError(f"if: {value!r} mixes text and expressions")
    if not STATUS_FUNCTION.search(text):
        text = f"success() && ({text})"
    return bool(evaluate([text], contexts, failed=failed)[0]["truthy"])


# ------------------------------------------------------------------------------------- file commands


def parse_file_command(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` / ``$GITHUB_ENV`` as the runner reads them: ``name=value`` and ``name<<DELIM`` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i].removesuffix("\r")
        if not line:
            i += 1
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if heredoc >= 0 and (equals < 0 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2:]
            try:
                end = next(k for k in range(i + 1, len(lines)) if lines[k].removesuffix("\r") == delimiter)
            except StopIteration:
                raise HarnessError(f"matching delimiter not found: {delimiter!r}") from None
            out[name] = "\n".join(ln.removesuffix("\r") for ln in lines[i + 1:end])
            i = end + 1
        elif equals > 0:
            out[line[:equals]] = line[equals + 1:]
            i += 1
        else:
            raise HarnessError(f"invalid file-command line: {line!r}")
    return out


# ------------------------------------------------------------------------------------- the log


@dataclass
class Annotation:
    level: str  # error | warning | notice
    message: str
    properties: dict[str, str]


def _unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return _unescape_data(text).replace("%3A", ":").replace("%2C", ",")


@dataclass
class Log:
    """The job log as the runner shows it: masked, with the workflow commands taken out."""

    raw: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    _stopped: str | None = None

    def mask(self, text: str) -> str:
        for secret in sorted(self.masks, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def runner_line(self, line: str) -> None:
        """A line the runner itself writes (not parsed for commands)."""
        self.raw.append(line)
        self.lines.append(line)

    def feed(self, output: str) -> None:
        """A step's output: each line is checked for a workflow command after its leading white space (as the
        runner's TrimStart), in the ``::`` form and the older ``##[`` form."""
        for line in output.splitlines():
            self.raw.append(line)
            trimmed = line.lstrip()
            match = COMMAND.match(trimmed)
            separator = ","
            if not match:
                match, separator = COMMAND_V1.match(trimmed), ";"
            if self._stopped is not None:  # ::stop-commands::TOKEN … ::TOKEN::
                if trimmed == f"::{self._stopped}::":
                    self._stopped = None
                else:
                    self.lines.append(self.mask(line))
                continue
            if not match:
                self.lines.append(self.mask(line))
                continue
            name, props, data = match.group(1).lower(), match.group(2) or "", match.group(3)
            if name == "add-mask":
                if data.strip():
                    self.masks.append(_unescape_data(data).strip())
                continue
            if name == "stop-commands":
                self._stopped = data
                continue
            if name in ("error", "warning", "notice"):
                properties = dict(p.split("=", 1) for p in props.split(separator) if "=" in p)
                self.annotations.append(Annotation(name, self.mask(_unescape_data(data)),
                                                   {k: self.mask(_unescape_property(v))
                                                    for k, v in properties.items()}))
            elif name == "group":
                self.groups.append(self.mask(_unescape_data(data)))
            elif name in ("set-output", "set-env", "save-state", "add-path"):
                raise HarnessError(f"::{name}:: is disabled on GitHub (use the environment files): {line!r}")
            self.lines.append(self.mask(line))

    def text(self) -> str:
        return "\n".join(self.lines)


# ------------------------------------------------------------------------------------- running


@dataclass
class StepRecord:
    index: int
    id: str
    name: str
    outcome: str = "skipped"  # success | failure | skipped
    uses: str | None = None
    with_: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    script: str = ""
    returncode: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # how long a run step took (the runner's log shows it too)


@dataclass
class ActionRun:
    conclusion: str  # success | failure
    outputs: dict[str, str]
    steps: list[StepRecord]
    log: Log
    summary: str
    env_files: dict[str, str]

    def step(self, step_id: str) -> StepRecord:
        return next(s for s in self.steps if s.id == step_id)


class ActionRunner:
    """Run ``<action_dir>/action.yml`` the way a job step ``uses: <action>`` would."""

    def __init__(self, action_dir: Path, workspace: Path, runner_temp: Path, *,
                 env: Mapping[str, str] | None = None, github: Mapping[str, Any] | None = None,
                 step_timeout: float = 900) -> None:
        self.action_dir = Path(action_dir)
        self.action = yaml.safe_load((self.action_dir / "action.yml").read_text(encoding="utf-8"))
        if self.action.get("runs", {}).get("using") != "composite":
            raise HarnessError("only composite actions are supported")
        self.workspace = Path(workspace)
        self.temp = Path(runner_temp)
        self.temp.mkdir(parents=True, exist_ok=True)
        self.base_env = dict(env if env is not None else _runner_env())
        self.github = {
            "action_path": str(self.action_dir), "workspace": str(self.workspace), "event_name": "push",
            "repository": "octo-org/model-repo", "sha": "0" * 40, "ref": "refs/heads/main", "run_id": "1",
            "server_url": "https://github.com", "action": "__modelfunc", **(github or {}),
        }
        self.runner = {"temp": str(self.temp), "os": "Linux", "arch": "X64", "name": "harness",
                       "tool_cache": str(self.temp / "tool-cache"), "debug": ""}
        self.step_timeout = step_timeout
        self.steps = self.action["runs"]["steps"]

    def _step_id(self, index: int) -> str:
        return str(self.steps[index].get("id") or f"__step{index}")

    def script_path(self, step_id: str) -> Path:
        index = next(i for i in range(len(self.steps)) if self._step_id(i) == step_id)
        return self.temp / "_harness" / f"{index:02d}-{step_id}.sh"

    def command(self, step_id: str) -> list[str]:
        """The exact command line the harness starts for run-step ``step_id`` (to fake it with ``fp``)."""
        return [*BASH, str(self.script_path(step_id))]

    # -- inputs ---------------------------------------------------------------------------------------

    def _inputs(self, given: Mapping[str, str]) -> dict[str, str]:
        declared = self.action.get("inputs") or {}
        unknown = set(given) - set(declared)
        if unknown:  # GitHub only warns; a test passing an undeclared input is a mistake
            raise HarnessError(f"inputs not declared in action.yml: {sorted(unknown)}")
        contexts = {"github": self.github, "runner": self.runner, "env": {}}
        values: dict[str, str] = {}
        defaults: dict[str, Any] = {}
        for name, spec in declared.items():
            spec = spec or {}
            if name in given:
                values[name] = given[name]
            elif "default" in spec:
                defaults[name] = spec["default"]
            elif spec.get("required"):
                raise HarnessError(f"input {name!r} is required")
            else:
                values[name] = ""
        values.update(interpolate_all(defaults, contexts))
        return {name: values[name] for name in declared}

    # -- the run ----------------------------------------------------------------------------------------

    def run(self, inputs: Mapping[str, str] | None = None) -> ActionRun:
        values = self._inputs(inputs or {})
        log = Log()
        summary: list[str] = []
        env_files: dict[str, str] = {}
        path_entries: list[str] = []
        steps_ctx: dict[str, dict[str, Any]] = {}
        records: list[StepRecord] = []
        failed = False
        (self.temp / "_harness").mkdir(parents=True, exist_ok=True)
        for index, step in enumerate(self.steps):
            step_id = self._step_id(index)
            record = StepRecord(index, step_id, step.get("name") or step.get("uses") or step.get("run", "")[:40])
            records.append(record)
            contexts = {"inputs": values, "steps": steps_ctx, "github": self.github, "runner": self.runner,
                        "env": {**env_files}}
            if not condition(step.get("if"), contexts, failed=failed):
                steps_ctx[step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                continue
            # Everything of the step that may hold expressions, in one evaluation: env:, with:, run: and
            # working-directory: (the same contexts for all; only a step that runs is evaluated, as on GitHub).
            templates = {**{("env", k): v for k, v in (step.get("env") or {}).items()},
                         **{("with", k): v for k, v in (step.get("with") or {}).items()}}
            if "run" in step:
                templates["run", ""] = step["run"]
                templates["working-directory", ""] = step.get("working-directory", "")
            evaluated = interpolate_all(templates, contexts, failed=failed)
            step_env = {k: v for (kind, k), v in evaluated.items() if kind == "env"}
            if "uses" in step:
                record.uses = step["uses"]
                record.with_ = {k: v for (kind, k), v in evaluated.items() if kind == "with"}
                record.outputs = self._stand_in(record.uses, record.with_, path_entries)
                record.outcome = "success"
            elif "run" in step:
                self._run(step, record, evaluated["run", ""], evaluated["working-directory", ""], step_env,
                          env_files, path_entries, summary, log)
            else:
                raise HarnessError(f"step {step_id} has neither run nor uses")
            if record.outcome == "failure" and not step.get("continue-on-error"):
                failed = True
            steps_ctx[step_id] = {"outputs": record.outputs, "outcome": record.outcome,
                                  "conclusion": record.outcome}
        contexts = {"inputs": values, "steps": steps_ctx, "github": self.github, "runner": self.runner,
                    "env": {**env_files}}
        declared = self.action.get("outputs") or {}
        outputs = interpolate_all({name: spec.get("value", "") for name, spec in declared.items()}, contexts,
                                  failed=failed)
        return ActionRun("failure" if failed else "success", outputs, records, log, "".join(summary), env_files)

    def _stand_in(self, uses: str, with_: Mapping[str, str], path_entries: list[str]) -> dict[str, str]:
        name = uses.split("@", 1)[0]
        if name == "actions/setup-python":
            wanted = with_.get("python-version", "")
            have = f"{sys.version_info.major}.{sys.version_info.minor}"
            if wanted and not (have == wanted or have.startswith(wanted + ".")):
                raise HarnessError(f"setup-python stand-in: python-version {wanted!r} asked, {have} runs the tests")
            if with_.get("update-environment", "true") != "false":
                path_entries.insert(0, str(Path(sys.executable).parent))
            return {"python-version": ".".join(map(str, sys.version_info[:3])), "python-path": sys.executable,
                    "cache-hit": "false"}
        if name == "actions/cache":
            return {"cache-hit": "false"}
        raise HarnessError(f"no stand-in for uses: {uses}")

    def _run(self, step: Mapping[str, Any], record: StepRecord, script: str, working_directory: str,
             step_env: dict[str, str], env_files: dict[str, str], path_entries: list[str], summary: list[str],
             log: Log) -> None:
        shell = step.get("shell")
        if shell != "bash":
            raise HarnessError(f"step {record.id}: shell {shell!r} (composite run steps need shell: bash here)")
        path = self.script_path(record.id)
        path.write_text(script, encoding="utf-8")
        files = {}
        for variable in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY", "GITHUB_STATE"):
            files[variable] = self.temp / "_harness" / f"{variable.lower()}_{uuid.uuid4().hex}"
            files[variable].touch()
        env = {**self.base_env, **env_files}
        env["PATH"] = os.pathsep.join([*path_entries, env.get("PATH", "")])
        env.update({
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_ACTION_PATH": str(self.action_dir), "GITHUB_EVENT_NAME": self.github["event_name"],
            "GITHUB_REPOSITORY": self.github["repository"], "GITHUB_SHA": self.github["sha"],
            "GITHUB_REF": self.github["ref"], "GITHUB_RUN_ID": self.github["run_id"],
            "GITHUB_SERVER_URL": self.github["server_url"], "RUNNER_TEMP": str(self.temp), "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64", "RUNNER_TOOL_CACHE": self.runner["tool_cache"],
            **{k: str(v) for k, v in files.items()},
        })
        env.update(step_env)
        cwd = self.workspace / working_directory
        record.command, record.env, record.script = self.command(record.id), env, script
        started = time.monotonic()
        proc = subprocess.Popen(record.command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=self.step_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            log.runner_line(f"##[error]the step timed out after {self.step_timeout:.0f} s")
        record.seconds = time.monotonic() - started
        log.feed(out.decode("utf-8", "replace") if isinstance(out, bytes) else (out or ""))
        record.returncode = proc.returncode
        record.outcome = "success" if proc.returncode == 0 else "failure"
        if record.outcome == "failure":
            log.runner_line(f"##[error]Process completed with exit code {proc.returncode}.")
        record.outputs = parse_file_command(files["GITHUB_OUTPUT"].read_text(encoding="utf-8"))
        env_files.update(parse_file_command(files["GITHUB_ENV"].read_text(encoding="utf-8")))
        for line in files["GITHUB_PATH"].read_text(encoding="utf-8").splitlines():
            if line.strip():
                path_entries.insert(0, line.strip())
        summary.append(files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8"))


def _runner_env() -> dict[str, str]:
    """A runner's environment: this machine's PATH and HOME, nothing of the test process's GITHUB_*/INPUT_*."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "DOCKER_HOST", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
            "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "NPM_CONFIG_USERCONFIG", "npm_config_registry",
            "MODELFUNC_UP_IMAGE")  # the suite's choice of the up step's image default (see conftest.py)
    return {k: v for k, v in os.environ.items() if k in keep}


def fake_install(process) -> int:  # noqa: ANN001 - a pytest-subprocess FakePopen
    """What `Install modelfunc` leaves behind: $RUNNER_TEMP/modelfunc-venv/bin/python that runs modelfunc (the
    interpreter running the tests, which has it installed editable)."""
    venv_bin = Path(process.kwargs["env"]["RUNNER_TEMP"]) / "modelfunc-venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return 0


class Act:
    """A job workspace with the action, the harness over it, and the installs faked."""

    def __init__(self, tmp_path: Path, fp, action_dir: Path = ROOT, env: dict[str, str] | None = None) -> None:  # noqa: ANN001
        self.workspace = tmp_path / "workspace"
        self.workspace.mkdir()
        self.temp = tmp_path / "runner-temp"
        self.runner = ActionRunner(action_dir, self.workspace, self.temp, env=env)
        self.fp = fp
        if fp is not None:
            fp.allow_unregistered(True)  # what the test itself starts (an Azurite) is not the action's
            fp.register(self.runner.command("install"), callback=fake_install)
            # The action's own node_modules (make setup installed them from the same package-lock.json).
            fp.register(self.runner.command("azurite"))
            # The steps of target local run for real, and fp.calls records them all; the steps of target azure
            # cannot run here (no Azure): a test of them fakes them (test_action_azure.py).
            for step_id in ("pip-key", "up"):
                fp.pass_command(self.runner.command(step_id))

    def repo(self, example: str, name: str = "model") -> Path:
        return _copy_as(example, self.workspace / name)

    def run(self, **inputs: str) -> ActionRun:
        return self.runner.run({k.replace("_", "-"): v for k, v in inputs.items()})


def checkout(dest: Path, *, leave_out: tuple[str, ...] = ()) -> Path:
    """What ``actions/checkout`` of this repository gives a job, in ``dest``: the files git tracks (and new ones it
    does not ignore: the working tree as it is), none of this machine's venvs, node_modules or build output; the
    folders in ``leave_out`` left out. A job may write into its checkout; a test does so into this copy."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for rel in files:
        if rel.startswith(leave_out) or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


def _copy_as(example: str, dest: Path) -> Path:
    src = copy_example(example, dest.parent / "_src")
    shutil.move(src, dest)
    shutil.rmtree(dest.parent / "_src")
    return dest
