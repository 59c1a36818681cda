"""action.yml run end to end by the act-compatible harness (act_harness.py), as a job step `uses:` it.

The steps that install modelfunc (pip into a fresh venv) and Azurite (npm ci) are faked with
pytest-subprocess's ``fp`` in most tests: the fake gives the step what the real one would leave behind (a
venv whose python is the interpreter running the tests, which has modelfunc installed editable) and every
other step runs for real — bash, scripts/up.py, the local host, Azurite, storage. One test runs the real
installs too. Each test asserts on what the runner would show: outputs, the masked log, annotations, the
job summary, the conclusion.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.act_harness import (
    Act,
    ActionRun,
    ActionRunner,
    HarnessError,
    Log,
    checkout,
    condition,
    evaluator_pid,
    interpolate,
    interpolate_all,
    parse_file_command,
    split_template,
)
from support.core import ROOT

pytestmark = pytest.mark.timeout(600)


def _ran(run: ActionRun) -> list[str]:
    return [s.id for s in run.steps if s.outcome != "skipped"]


# ------------------------------------------------------------------------------------- end to end


def test_the_action_packages_runs_and_tests_an_http_model(act: Act) -> None:
    act.repo("diabetes-http")
    run = act.run(model_repo="model")
    assert run.conclusion == "success", run.log.text()
    assert run.outputs["test-result"] == "pass"
    assert run.outputs["image"] == "" and run.outputs["app-url"] == ""
    report = json.loads(Path(run.outputs["report-path"]).read_text())
    assert report["passed"] is True and report["actual"] == [661.6371, 362.4341]
    assert "| path | expected | actual | result |" in run.summary
    assert "| (root) | <code>[661.6371, 362.4341]</code> | <code>[661.6371, 362.4341]</code> | match |" in run.summary
    assert run.log.annotations == []
    assert run.log.groups == ["package diabetes-http", "the app's environment (its own Python, from its lock)",
                              "score the sample with run() called directly", "start the local host", "test the sample"]
    assert "### modelfunc golden answer: ✅ the same answer everywhere" in run.summary
    assert Path(run.outputs["golden"]).is_file()
    # What ran, in order, and how: the two installs faked, everything else real.
    assert _ran(run) == ["python", "pip-key", "pip-cache", "install", "azurite", "up"]
    assert list(act.fp.calls) == [act.runner.command(s) for s in _ran(run) if run.step(s).uses is None]
    python = run.step("python")
    assert python.uses.startswith("actions/setup-python@") and python.with_ == {
        "python-version": "3.11", "update-environment": "false"}
    install = run.step("install")
    assert install.env["PYTHON"] == sys.executable
    assert install.env["PIP_CACHE_DIR"] == str(act.temp / "modelfunc-pip-cache")
    key = run.step("pip-key").outputs["key"]
    assert re.fullmatch(r"modelfunc-pip-Linux-py3\.11\.\d+-[0-9a-f]{16}", key)
    cache = run.step("pip-cache")
    assert cache.uses.startswith("actions/cache@")
    assert cache.with_ == {"path": str(act.temp / "modelfunc-pip-cache"), "key": key}
    up = run.step("up")
    assert up.command == ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(act.runner.script_path("up"))]
    inputs = {k: v for k, v in up.env.items() if k.startswith("INPUT_")}
    assert inputs == {"INPUT_MODEL_REPO": "model", "INPUT_CONFIG": "modelfunc.yaml", "INPUT_TARGET": "local",
                      "INPUT_CONNECTION_STRING": "",
                      "INPUT_RUN_BLOB_TEST": "true", "INPUT_BLOB_TEST_TIMEOUT": "",  # "": by target and trigger
                      "INPUT_BUILD_IMAGE": "", "INPUT_BASE_IMAGE": ""}
    assert up.env["MODELFUNC_AZURITE"] == str(ROOT / "node_modules" / ".bin" / "azurite-blob")


def test_the_action_round_trips_a_blob_on_azurite(act: Act) -> None:
    act.repo("diabetes-blob")
    run = act.run(model_repo="model", blob_test_timeout="90")
    assert run.conclusion == "success", run.log.text()
    assert run.outputs["test-result"] == "pass"
    assert "| trigger | blob |" in run.summary and "| output | output/modelfunc-test-" in run.summary
    assert "Started Azurite" in run.log.text() or "start Azurite" in run.log.groups


def test_a_failing_sample_fails_the_action_with_a_titled_error_and_the_difference(act: Act) -> None:
    repo = act.repo("diabetes-http")
    (repo / "samples" / "expected.json").write_text("[1.5, 362.4341]\n")
    run = act.run(model_repo="model")
    assert run.conclusion == "failure"
    assert run.step("up").outcome == "failure" and run.step("up").returncode == 1
    assert run.outputs["test-result"] == "fail"
    errors = [a for a in run.log.annotations if a.level == "error"]
    assert len(errors) == 1 and errors[0].properties["title"] == "modelfunc: SampleTestFailed"
    assert "[0]: expected 1.5, got 661.6371" in errors[0].message
    assert "| [0] | <code>1.5</code> | <code>661.6371</code> | differs by" in run.summary
    assert "### ❌ modelfunc: SampleTestFailed" in run.summary


def test_a_config_error_fails_the_action_pointing_at_its_file_and_line(act: Act) -> None:
    repo = act.repo("diabetes-blob")
    config = repo / "modelfunc.yaml"
    lines = config.read_text().splitlines()
    row = next(i for i, ln in enumerate(lines) if ln.strip().startswith("input_path:"))
    lines[row] = lines[row].replace("input_path:", "input_pth:")
    config.write_text("\n".join(lines) + "\n")
    run = act.run(model_repo="model")
    assert run.conclusion == "failure" and run.outputs["test-result"] == ""
    [error] = [a for a in run.log.annotations if a.level == "error"]
    assert error.properties["title"] == "modelfunc: ConfigError"
    assert error.properties["file"] == "model/modelfunc.yaml"
    assert error.properties["line"] == str(row + 1)
    assert "input_pth" in error.message and "input_path" in error.message  # the typo and the did-you-mean


# -------------------------------------------------------------------------- injection and hostile PATH

PAYLOADS = ['$(touch "$MARK/dollar")', '`touch "$MARK/backtick"`', '"; touch "$MARK/quote"; "',
            "'; touch \"$MARK/single\"; '", "x\n::error title=injected::by an input\ntouch \"$MARK/newline\""]
# The payloads' commands, and the ones modelfunc must never resolve from PATH (it runs its venv's python by path).
TRAPPED = ["touch", "id", "whoami", "curl", "wget", "python", "python3", "pip", "pip3", "modelfunc", "node", "npm",
           "git", "docker", "az", "func"]


def _hostile_path(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH directory, first on PATH, whose commands record that they ran (and then fail)."""
    traps, marks = tmp_path / "hostile-bin", tmp_path / "trapped"
    traps.mkdir()
    marks.mkdir()
    for name in TRAPPED:
        trap = traps / name
        trap.write_text(f'#!/bin/bash\nprintf "%s\\n" "$0 $*" >> "{marks}/{name}"\nexit 97\n')
        trap.chmod(0o755)
    return traps, marks


def test_hostile_path_and_inputs_run_nothing_the_user_did_not_write(tmp_path: Path, fp) -> None:  # noqa: ANN001
    traps, marks = _hostile_path(tmp_path)
    env = {**os.environ, "PATH": f"{traps}{os.pathsep}{os.environ['PATH']}", "MARK": str(marks)}
    env = {k: v for k, v in env.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))}
    act = Act(tmp_path, fp, env=env)
    # The model repo's directory name is every payload at once: used as data it is just a (strange) path.
    name = "m " + " ".join(PAYLOADS)
    act.repo("diabetes-http", name=name)
    hostile = dict(zip(["app_name", "resource_group", "location", "storage_prefix", "registry"], PAYLOADS,
                       strict=True))
    run = act.run(model_repo=name, client_id=PAYLOADS[0], tenant_id=PAYLOADS[1], **hostile)
    assert run.conclusion == "success", run.log.text()
    assert run.outputs["test-result"] == "pass"
    assert sorted(p.name for p in marks.iterdir()) == [], "a trapped command ran"
    assert not list(tmp_path.rglob("dollar")) and not list(tmp_path.rglob("backtick"))
    assert [a for a in run.log.annotations if a.properties.get("title") == "injected"] == [], "\n".join(run.log.raw)
    # The inputs reached the step as environment values, verbatim, and never became part of a script.
    up = run.step("up")
    assert up.env["INPUT_MODEL_REPO"] == name
    for step in run.steps:
        for payload in PAYLOADS:
            assert payload not in step.script
    assert set(run.outputs) == {"image", "app-url", "slot-url", "test-result", "report-path", "golden"}


def test_an_injection_in_a_checked_input_is_a_clear_error_and_runs_nothing(tmp_path: Path, fp) -> None:  # noqa: ANN001
    traps, marks = _hostile_path(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))}
    env.update(PATH=f"{traps}{os.pathsep}{os.environ['PATH']}", MARK=str(marks))
    act = Act(tmp_path, fp, env=env)
    act.repo("diabetes-http")
    run = act.run(model_repo="model", blob_test_timeout='60$(touch "$MARK/timeout")`id`',
                  run_blob_test="true\n::error title=injected::x")
    assert run.conclusion == "failure"
    [error] = [a for a in run.log.annotations if a.level == "error"]
    assert error.properties["title"] == "modelfunc: ConfigError"
    assert "run-blob-test" in error.message or "blob-test-timeout" in error.message
    assert list(marks.iterdir()) == []


# ------------------------------------------------------------------------------------------ secrets


def test_a_secret_connection_string_is_masked_everywhere(tmp_path: Path, fp, monkeypatch) -> None:  # noqa: ANN001
    """The storage account's key is a secret: it appears in no log line (only in its mask), summary or output."""
    import base64
    import secrets as pysecrets

    from modelfunc.azurite import Azurite

    key = base64.b64encode(pysecrets.token_bytes(48)).decode()
    account = "modelfunctest"
    monkeypatch.setenv("AZURITE_ACCOUNTS", f"{account}:{key}")
    act = Act(tmp_path, fp)
    act.repo("diabetes-blob")
    with Azurite() as azurite:
        conn = (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
                f"BlobEndpoint=http://127.0.0.1:{azurite.port}/{account};")
        run = act.run(model_repo="model", connection_string=conn, blob_test_timeout="90")
    assert run.conclusion == "success", run.log.text()
    assert run.outputs["test-result"] == "pass"
    assert key in run.log.masks and conn in run.log.masks
    for line in run.log.raw:
        if key in line:
            assert line.startswith("::add-mask::"), f"the key was printed: {line!r}"
    assert key not in run.log.text() and account in run.summary  # the account may show; its key never
    assert key not in run.summary and key not in json.dumps(run.outputs) and key not in json.dumps(run.env_files)
    assert key not in Path(run.outputs["report-path"]).read_text()
    assert not any("Started Azurite" in line for line in run.log.raw)  # it used the account given


# -------------------------------------------------------------------------- the real installs, once


@pytest.mark.timeout(900)
def test_the_action_installs_itself_for_real(tmp_path: Path) -> None:
    """No fakes: pip installs modelfunc from the action's directory into a new venv, npm ci installs Azurite."""
    # What a `uses:` checkout of the action needs (template/ too: the wheel carries it, setup.py); not the tests
    # (their invented secrets stay in the suite).
    action_dir = checkout(tmp_path / "action", leave_out=("tests/", "docs/", "benchmarks/", "examples/"))
    act = Act(tmp_path, None, action_dir=action_dir)
    act.repo("diabetes-blob")
    run = act.run(model_repo="model", blob_test_timeout="120")
    assert run.conclusion == "success", run.log.text()[-3000:]
    assert run.outputs["test-result"] == "pass"
    venv_python = act.temp / "modelfunc-venv" / "bin" / "python"
    check = subprocess.run([str(venv_python), "-c", "import modelfunc; print(modelfunc.__file__)"],
                           capture_output=True, text=True, check=True)
    assert str(act.temp / "modelfunc-venv") in check.stdout  # installed into the action's venv, not editable
    # The app's requirements (numpy) ran from the app's own environment: none of them reached modelfunc's venv,
    # and pip finds nothing broken there.
    numpy = subprocess.run([str(venv_python), "-c", "import numpy"], capture_output=True, text=True)
    assert numpy.returncode == 1 and "No module named 'numpy'" in numpy.stderr
    pip_check = subprocess.run([str(venv_python), "-m", "pip", "check"], capture_output=True, text=True)
    assert pip_check.returncode == 0, pip_check.stdout + pip_check.stderr
    assert (action_dir / "node_modules" / ".bin" / "azurite-blob").exists()
    assert not (action_dir / "node_modules" / "@actions" / "expressions").exists()  # dev tools left out


# ------------------------------------------------------------------------------ the harness itself


def test_expressions_and_conditions_follow_github() -> None:
    contexts = {"inputs": {"target": "LOCAL", "n": "3"}, "steps": {}, "github": {}, "runner": {}, "env": {}}
    assert split_template("a ${{ x }} b ${{ '}}' }}") == [(False, "a "), (True, " x "), (False, " b "),
                                                           (True, " '}}' ")]
    assert condition("inputs.target == 'local'", contexts, failed=False) is True  # strings compare ignoring case
    assert condition("inputs.target == 'local'", contexts, failed=True) is False  # an implicit success()
    assert condition("${{ always() }}", contexts, failed=True) is True
    assert condition("failure()", contexts, failed=False) is False
    assert condition("inputs.n > 2", contexts, failed=False) is True
    with pytest.raises(HarnessError, match="Unrecognized"):
        condition("secrets.token", contexts, failed=False)


def test_one_evaluator_process_answers_each_batch_and_a_dead_one_is_replaced() -> None:
    contexts = {"inputs": {"a": "x"}, "steps": {}, "github": {}, "runner": {}, "env": {}}
    values = {"both": "${{ inputs.a }}-${{ inputs.a == 'X' }}", "plain": "no expression", "yes": True, "none": None,
              "empty": "${{ inputs.missing }}"}
    assert interpolate_all(values, contexts) == {"both": "x-true", "plain": "no expression", "yes": "true",
                                                 "none": "", "empty": ""}
    pid = evaluator_pid()
    assert pid is not None
    assert interpolate("${{ inputs.a }}", contexts) == "x" and evaluator_pid() == pid  # the same process
    os.kill(pid, signal.SIGKILL)
    assert interpolate("${{ inputs.a }}!", contexts) == "x!"
    assert evaluator_pid() not in (None, pid)
    with pytest.raises(HarnessError, match="Unrecognized"):  # an error in one value of a batch fails the batch
        interpolate_all({"good": "${{ inputs.a }}", "bad": "${{ secrets.token }}"}, contexts)


def test_file_commands_parse_like_the_runner() -> None:
    assert parse_file_command("a=1\nb<<EOF\nx\ny=z\nEOF\nc=\n") == {"a": "1", "b": "x\ny=z", "c": ""}
    with pytest.raises(HarnessError, match="delimiter"):
        parse_file_command("b<<EOF\nx\n")


def test_the_log_masks_and_honours_stop_commands() -> None:
    log = Log()
    log.feed("::add-mask::s3cret\nuse s3cret\n::stop-commands::tok\n::error::not a command\n::tok::\n"
             "::error title=T::real s3cret")
    assert log.lines == ["use ***", "::error::not a command", "::error title=T::real ***"]
    assert [(a.properties, a.message) for a in log.annotations] == [({"title": "T"}, "real ***")]


def test_the_harness_runs_the_step_protocol(tmp_path: Path) -> None:
    """A small composite action: outputs, env, path, summary, skipped and always() steps, a failure."""
    action = tmp_path / "action"
    action.mkdir()
    tool = tmp_path / "tool-bin"
    tool.mkdir()
    (tool / "hello-tool").write_text("#!/bin/bash\necho hello from tool\n")
    (tool / "hello-tool").chmod(0o755)
    (action / "action.yml").write_text(f"""
name: t
description: t
inputs:
  word: {{description: w, default: "${{{{ github.action_path }}}}"}}
outputs:
  said: {{description: s, value: "${{{{ steps.one.outputs.said }}}}"}}
  later: {{description: l, value: "${{{{ steps.three.outcome }}}}"}}
runs:
  using: composite
  steps:
    - id: one
      shell: bash
      env: {{WORD: "${{{{ inputs.word }}}}"}}
      run: |
        printf 'said<<E\\n%s\\nline 2\\nE\\n' "$WORD" >> "$GITHUB_OUTPUT"
        echo "FROM_ONE=1" >> "$GITHUB_ENV"
        echo "{tool}" >> "$GITHUB_PATH"
        echo "## hi" >> "$GITHUB_STEP_SUMMARY"
    - id: two
      shell: bash
      run: '[ "$FROM_ONE" = 1 ] && hello-tool && false'
    - id: three
      shell: bash
      run: echo never
    - id: four
      if: always() && steps.two.outcome == 'failure'
      shell: bash
      run: echo cleanup
""")
    (tmp_path / "ws").mkdir()
    run = ActionRunner(action, tmp_path / "ws", tmp_path / "temp").run({})
    assert run.conclusion == "failure"
    assert run.outputs == {"said": f"{action}\nline 2", "later": "skipped"}
    assert [s.outcome for s in run.steps] == ["success", "failure", "skipped", "success"]
    assert "hello from tool" in run.log.lines and "cleanup" in run.log.lines
    assert "Process completed with exit code 1." in run.log.text()
    assert run.summary == "## hi\n"
    with pytest.raises(HarnessError, match="not declared"):
        ActionRunner(action, tmp_path / "ws", tmp_path / "temp").run({"nope": "1"})


def test_every_uses_step_of_the_action_has_a_stand_in(tmp_path: Path) -> None:
    runner = ActionRunner(ROOT, ROOT, tmp_path, env={})
    for step in runner.steps:
        if "uses" in step:
            assert runner._stand_in(step["uses"], {"python-version": "3.11", "update-environment": "false"}, [])



# ------------------------------------------------------------------- what the self-test workflow does


@pytest.mark.parametrize("trigger", ["blob", "http", "service-bus-queue"])
def test_the_self_test_flow_passes_on_a_repo_scaffolded_from_the_template(act: Act, trigger: str) -> None:
    """.github/workflows/self-test.yml: cookiecutter template/ into scaffold/, then `uses: ./` on it."""
    from cookiecutter.main import cookiecutter

    cookiecutter(str(ROOT / "template"), no_input=True, output_dir=str(act.workspace / "scaffold"),
                 extra_context={"project_name": "Self Test", "trigger": trigger, "python_version": "3.11"})
    run = act.run(model_repo="scaffold/self-test", target="local", blob_test_timeout="90")
    assert run.conclusion == "success", run.log.text()[-3000:]
    assert run.outputs["test-result"] == "pass" and run.outputs["image"] == ""
    report = json.loads(Path(run.outputs["report-path"]).read_text())
    assert report["passed"] is True and report["mismatches"] == [] and report["error"] is None
