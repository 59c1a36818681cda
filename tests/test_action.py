"""The GitHub Action: the action wing (modelfunc/action/), scripts/*.py (called in-process through their main()),
and action.yml.

The scripts run as a step would: GITHUB_ACTIONS=true, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY pointing at
files, inputs as INPUT_* variables. Everything under them is real (render, local host, Azurite, storage).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from conftest import ROOT
from modelfunc import roundtrip
from modelfunc.action import io, steps, summaries
from modelfunc.compare import Mismatch
from modelfunc.errors import ConfigError

VENV_BIN = Path(sys.executable).parent
ACTION = ROOT / "action.yml"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"modelfunc_script_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIM` ... `DELIM` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)  # ValueError (a failing test) when the block is not closed
            out[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            out[name] = value
            i += 1
    return out


class Step:
    """One action step's environment: the files the runner gives it and the inputs."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.output = root / "github_output"
        self.summary = root / "step_summary"
        self.output.touch()
        self.summary.touch()
        self.mp = monkeypatch
        for key in list(os.environ):
            if key.startswith(("INPUT_", "GITHUB_")) or key in ("RUNNER_TEMP", "MODELFUNC_CONNECTION_STRING"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("GITHUB_OUTPUT", str(self.output))
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(self.summary))
        monkeypatch.setenv("GITHUB_WORKSPACE", str(root))
        monkeypatch.setenv("RUNNER_TEMP", str(root / "runner-temp"))
        (root / "runner-temp").mkdir()

    def inputs(self, **values: str) -> None:
        for name, value in values.items():
            self.mp.setenv(f"INPUT_{name.upper()}", value)

    def outputs(self) -> dict[str, str]:
        return parse_outputs(self.output.read_text(encoding="utf-8"))

    def summary_text(self) -> str:
        return self.summary.read_text(encoding="utf-8")


@pytest.fixture
def step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Step:
    return Step(tmp_path, monkeypatch)


# ------------------------------------------------------------------------------------ scripts/up.py


def test_up_http_passes_and_writes_outputs_and_summary(example, step: Step, capfd) -> None:
    repo = example("diabetes-http")
    step.inputs(model_repo=str(repo), blob_test_timeout="60")
    assert load_script("up").main([]) == 0
    out = capfd.readouterr().out
    assert "::group::test the sample" in out and "::endgroup::" in out
    assert "::error" not in out
    outputs = step.outputs()
    assert outputs["test-result"] == "pass"
    assert outputs["image"] == "" and outputs["app-url"] == ""
    report = json.loads(Path(outputs["report-path"]).read_text())
    assert Path(outputs["report-path"]).parent == step.root / "runner-temp"
    assert report["passed"] is True and report["actual"] == [661.6371, 362.4341]
    summary = step.summary_text()
    assert "### modelfunc sample test: ✅ PASS" in summary
    assert "| path | expected | actual | result |" in summary
    assert "| (root) | <code>[661.6371, 362.4341]</code> | <code>[661.6371, 362.4341]</code> | match |" in summary
    assert re.search(r"\| latency \| \d+ ms \|", summary)


def test_up_fails_with_a_wrong_expected_output(example, step: Step, capfd) -> None:
    repo = example("diabetes-http")
    (repo / "samples" / "expected.json").write_text("[1.5, 362.4341]\n")
    step.inputs(model_repo=str(repo))
    assert load_script("up").main([]) == 1
    out = capfd.readouterr().out
    errors = [ln for ln in out.splitlines() if ln.startswith("::error ")]
    assert len(errors) == 1
    assert errors[0].startswith("::error title=modelfunc%3A SampleTestFailed::the sample did not round-trip")
    assert "[0]%3A" not in errors[0] and "[0]: expected 1.5, got 661.6371" in errors[0]
    assert step.outputs()["test-result"] == "fail"
    summary = step.summary_text()
    assert "❌ FAIL" in summary
    assert "| [0] | <code>1.5</code> | <code>661.6371</code> | differs by" in summary
    assert "### ❌ modelfunc: SampleTestFailed" in summary


def test_up_blob_round_trips_on_its_own_azurite(example, step: Step) -> None:
    repo = example("diabetes-blob")
    step.inputs(model_repo=str(repo), run_blob_test="true")
    assert load_script("up").main([]) == 0
    outputs = step.outputs()
    assert outputs["test-result"] == "pass"
    report = json.loads(Path(outputs["report-path"]).read_text())
    assert report["trigger"] == "blob" and report["output"].startswith("output/modelfunc-test-")
    summary = step.summary_text()
    assert "| trigger | blob |" in summary and "| output | output/modelfunc-test-" in summary
    assert "AccountKey" not in summary + step.output.read_text()


def test_up_without_the_test_only_packages(example, step: Step) -> None:
    repo = example("diabetes-http")
    step.inputs(model_repo=str(repo), run_blob_test="false")
    assert load_script("up").main([]) == 0
    assert step.outputs()["test-result"] == "skipped"
    assert (repo / "build" / "app" / "function_app.py").is_file()


def test_requirements_pip_cannot_install_stop_before_the_host(example, step: Step, capfd) -> None:
    repo = example("diabetes-http")
    env = repo / "environment.yml"
    env.write_text(env.read_text().replace("  - pip:\n", "  - pip:\n      - modelfunc-no-such-package==0.0.0\n"))
    assert "modelfunc-no-such-package" in env.read_text()
    step.inputs(model_repo=str(repo))
    assert load_script("up").main([]) == 2
    out = capfd.readouterr().out
    assert "::group::the app's environment (its own Python, from its lock)" in out
    assert ("::error file=" + env.relative_to(step.root).as_posix()
            + ",title=modelfunc%3A EnvironmentSpecError::the dependencies cannot be resolved for CPython") in out
    assert "modelfunc-no-such-package" in out
    assert "::group::start the local host" not in out


def test_a_config_error_is_an_annotation_at_its_file_and_line(example, step: Step, capfd) -> None:
    repo = example("diabetes-blob")
    config = repo / "modelfunc.yaml"
    config.write_text(config.read_text().replace("input/{blobname}.json", "input/{name}.json"))
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "input_path" in text)
    step.inputs(model_repo=str(repo))
    assert load_script("up").main([]) == 2
    out = capfd.readouterr().out
    rel = config.relative_to(step.root).as_posix()
    expected = (f"::error file={rel},line={line},title=modelfunc%3A ConfigError::trigger.input_path: "
                "'input/{name}.json' must contain {blobname}")
    assert expected in out
    assert not (repo / "build").exists()
    assert step.output.read_text() == ""
    assert f"in `{rel}` line {line}" in step.summary_text()


def test_a_bad_input_is_a_config_error(example, step: Step, capfd) -> None:
    step.inputs(model_repo=str(example("diabetes-http")), run_blob_test="yes")
    assert load_script("up").main([]) == 2
    assert "::error title=modelfunc%3A ConfigError::run-blob-test: 'yes' is not a boolean" in capfd.readouterr().out


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0", "1e300", "soon"])
def test_a_timeout_input_that_would_never_end_is_a_config_error(example, step: Step, capfd, value: str) -> None:
    step.inputs(model_repo=str(example("diabetes-http")), blob_test_timeout=value)
    assert load_script("up").main([]) == 2
    assert (f"ConfigError::blob-test-timeout: '{value}' is not a number of seconds greater than 0 and at most 86400"
            in capfd.readouterr().out)


def test_up_runs_only_target_local(example, step: Step, capfd) -> None:
    step.inputs(model_repo=str(example("diabetes-http")), target="azure")
    assert load_script("up").main([]) == 2
    out = capfd.readouterr().out
    assert "::error title=modelfunc%3A ConfigError::target: 'azure' is not a target up.py runs" in out
    assert "deploy.py" in out  # where target azure goes instead
    assert step.output.read_text() == ""


def test_azure_scripts_fail_clearly_on_bad_inputs(example, step: Step, capfd) -> None:
    repo = str(example("diabetes-http"))
    step.inputs(model_repo=repo, subscription_id="not-a-guid", image="r.azurecr.io/m@sha256:" + "0" * 64)
    assert load_script("deploy").main([]) == 2
    assert "::error title=modelfunc%3A OptionError::subscription-id: 'not-a-guid' is not a subscription id" \
        in capfd.readouterr().out
    step.inputs(deployment=str(step.root / "missing.json"))
    assert load_script("swap").main([]) == 2
    assert "is not a deployment the deploy step wrote" in capfd.readouterr().out
    assert step.output.read_text() == ""


def test_scripts_take_no_arguments(step: Step) -> None:
    for name in ("up", "blob_test", "package", "deploy", "swap"):
        assert load_script(name).main(["--oops"]) == 2


# ------------------------------------------------------------------------------- scripts/blob_test.py


@pytest.mark.azurite
def test_blob_test_script_masks_the_connection_string(example, step: Step, azurite, serve, capfd) -> None:
    repo = example("diabetes-blob")
    serve(repo, connection_string=azurite.connection_string)
    step.inputs(model_repo=str(repo), connection_string=azurite.connection_string, blob_test_timeout="30")
    assert load_script("blob_test").main([]) == 0
    out = capfd.readouterr().out
    assert f"::add-mask::{azurite.connection_string}" in out.splitlines()
    assert step.outputs()["test-result"] == "pass"
    everything = step.output.read_text() + step.summary_text()
    assert azurite.connection_string not in everything and "AccountKey" not in everything
    assert "| (root) | <code>[661.6371, 362.4341]</code> |" in step.summary_text()


def test_blob_test_script_needs_a_url_for_http(example, step: Step, capfd) -> None:
    step.inputs(model_repo=str(example("diabetes-http")))
    assert load_script("blob_test").main([]) == 2
    out = capfd.readouterr().out
    assert "::error title=modelfunc%3A ConfigError::the HTTP trigger is tested with a request: give the function" in out


# --------------------------------------------------------------------------------- scripts/package.py


def test_package_script_masks_the_password_and_summarises_the_context(example, step: Step, capfd) -> None:
    repo = example("diabetes-http")
    password = "s3cr%t,\nsecond:line"
    step.inputs(model_repo=str(repo), registry_password=password, registry_username="ci")
    assert io.run(lambda: steps.package(build_image=False), []) == 0
    out = capfd.readouterr().out.splitlines()
    assert "::add-mask::s3cr%25t," in out and "::add-mask::second:line" in out
    assert out.index("::add-mask::s3cr%25t,") < out.index("::group::package diabetes-http")
    outputs = step.outputs()
    assert outputs == {"image": "", "digest": ""}
    summary = step.summary_text()
    assert "| image | (not built) |" in summary
    assert "| layer | digest | pushed |" in summary and "| code | sha256:" in summary
    for part in password.splitlines():
        assert part not in summary + step.output.read_text()


def test_package_script_target_azure_creates_the_registry_before_it_pushes(example, step: Step, monkeypatch) -> None:  # noqa: ANN001
    """A new user's first push, on an empty subscription: the registry is made before anything is pushed (no image
    is built here; a username/password input skips the token exchange)."""
    from azurefake import SUB, FakeArm, FakeCredential
    from modelfunc.azure import PipelineSettings

    arm = FakeArm()
    monkeypatch.setattr("modelfunc.azure.clients.default_settings",
                        lambda: PipelineSettings(transport=arm.transport(), polling_interval=0, retry_backoff_factor=0))
    monkeypatch.setattr("modelfunc.azure.credentials.get_credential", lambda **kw: FakeCredential())
    step.inputs(model_repo=str(example("diabetes-blob")), target="azure", registry="diabscorers",
                registry_username="ci", registry_password="unused-here", subscription_id=SUB, app_name="diab-app",
                location="westeurope")
    assert io.run(lambda: steps.package(build_image=False), []) == 0
    created = arm.get(f"/subscriptions/{SUB}/resourceGroups/diab-app-rg/providers/Microsoft.ContainerRegistry/"
                      "registries/diabscorers")
    assert created is not None and created["properties"]["adminUserEnabled"] is False
    assert created["tags"] == {"modelfunc-app": "diab-app"}


# ------------------------------------------------------------------------------------ action/io.py


def test_multiline_outputs_round_trip(step: Step) -> None:
    values = {"plain": "x", "multi": "line 1\nline 2\n\nline 4", "empty": "", "eq": "a=b<<c",
              "trailing": "ends with newline\n"}
    for name, value in values.items():
        io.set_output(name, value)
    assert step.outputs() == values


def test_the_delimiter_never_collides(step: Step, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"])
    monkeypatch.setattr(io.uuid, "uuid4", lambda: next(ids))
    value = "before\nghadelimiter_11111111-1111-1111-1111-111111111111\nafter"
    text = io.set_output("tricky", value)
    assert text.startswith("tricky<<ghadelimiter_22222222-")
    assert step.outputs() == {"tricky": value}


def test_annotation_escaping() -> None:
    text = io.error("50% done\r\nnext: a, b", title="t: 1, 2%", file="dir/a,b:c.yaml", line=7)
    assert text == "::error file=dir/a%2Cb%3Ac.yaml,line=7,title=t%3A 1%2C 2%25::50%25 done%0D%0Anext: a, b\n"
    assert io.escape_data("%\r\n:,") == "%25%0D%0A:,"
    assert io.escape_property("%\r\n:,") == "%25%0D%0A%3A%2C"
    assert io.error("m") == "::error::m\n"


def test_file_paths_are_relative_to_the_workspace(step: Step, capfd) -> None:
    io.error("bad", title="x", file=str(step.root / "repo" / "modelfunc.yaml"), line=3)
    assert capfd.readouterr().out == "::error file=repo/modelfunc.yaml,line=3,title=x::bad\n"


def test_each_line_of_a_secret_is_masked(step: Step, capfd) -> None:
    io.mask("-----BEGIN KEY-----\r\nabc%def\n\n  \nlast")
    assert capfd.readouterr().out.splitlines() == [
        "::add-mask::-----BEGIN KEY-----", "::add-mask::abc%25def", "::add-mask::last"]
    io.mask("")
    assert capfd.readouterr().out == ""


def test_groups(step: Step, capfd) -> None:
    with pytest.raises(RuntimeError), io.group("a: b"):
        print("inside")
        raise RuntimeError
    assert capfd.readouterr().out.splitlines() == ["::group::a: b", "inside", "::endgroup::"]


def test_nothing_is_written_outside_actions(step: Step, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert not io.in_actions()
    assert io.set_output("x", "1").startswith("x<<ghadelimiter_")
    assert io.add_summary("# hi") == "# hi\n"
    assert io.mask("secret") == "::add-mask::secret\n"
    assert io.error("oops", title="t") == "::error title=t::oops\n"
    with io.group("g"):
        pass
    assert capfd.readouterr().out == ""
    assert step.output.read_text() == "" and step.summary_text() == ""
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    assert not io.in_actions()


def test_inputs_follow_githubs_name_mangling(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"INPUT_MODEL-REPO": " repo ", "INPUT_MY_SETTING": "v", "INPUT_RUN_BLOB_TEST": "FALSE", "OTHER": "x"}
    assert io.input_env_name("model-repo") == "INPUT_MODEL-REPO"
    assert io.input_env_name("my setting") == "INPUT_MY_SETTING"
    assert io.get_input("model-repo", env=env) == "repo"
    assert io.get_input("my setting", env=env) == "v"
    assert io.get_bool("run-blob-test", True, env=env) is False
    assert io.get_input("missing", "dflt", env=env) == "dflt"
    with pytest.raises(ConfigError) as info:
        io.get_input("missing", required=True, env=env)
    assert info.value.field == "missing"
    with pytest.raises(ConfigError):
        io.get_float("t", 60.0, env={"INPUT_T": "-1"})
    assert io.get_float("t", 60.0, env={"INPUT_T": "2.5"}) == 2.5


def test_the_test_summary_escapes_table_cells() -> None:
    report = roundtrip.TestReport(False, "http", "http://x|y", "samples/input.json", latency_ms=12.3, tolerance=1e-6,
                        expected={"a": "p|q"}, actual={"a": "<b>\nr"},
                        mismatches=[Mismatch(".a", "p|q", "<b>\nr", "different value")])
    text = summaries.summary_for_test(report)
    assert "| target | http://x&#124;y |" in text
    assert ("| .a | <code>&quot;p&#124;q&quot;</code> | <code>&quot;&lt;b&gt;\\nr&quot;</code> | "
            "different value |") in text
    assert "| latency | 12 ms |" in text
    assert summaries.summary_for_test(report.to_dict()) == text


def test_the_image_summary_names_the_digest() -> None:
    summary = {"app": "/b/app", "reference": "reg:5000/m@sha256:" + "a" * 64, "digest": "sha256:" + "a" * 64,
               "tag": "reg:5000/m:abc", "self_test": {"passed": True, "elapsed_ms": 40},
               "layer_tars": {"model": "sha256:" + "b" * 64, "code": "sha256:" + "c" * 64},
               "pushed_layers": {"c" * 12: 2048}}
    text = summaries.summary_for_image(summary)
    assert f"| image | <code>reg:5000/m@sha256:{'a' * 64}</code> |" in text
    assert "| self-test | ✅ passed in 40 ms |" in text
    assert f"| digest | sha256:{'a' * 64} |" in text
    assert f"| code | sha256:{'c' * 64} | 2048 bytes |" in text
    assert f"| model | sha256:{'b' * 64} | — |" in text


# ----------------------------------------------------------------------------------------- action.yml


def _action() -> dict:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _run_tool(*args: str) -> str:
    result = subprocess.run([str(VENV_BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NO_COLOR": "1"})
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # colours, should a CI environment force them
    assert result.returncode == 0, out + result.stderr
    return out


def test_action_and_workflows_validate_against_githubs_schemas() -> None:
    assert [w.name for w in WORKFLOWS] == ["ci.yml", "release.yml", "self-test.yml"]
    assert "ok -- validation done" in _run_tool("check-jsonschema", "--builtin-schema", "vendor.github-actions",
                                                 str(ACTION))
    assert "ok -- validation done" in _run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows",
                                                 *map(str, WORKFLOWS))


def test_action_and_workflows_have_no_zizmor_findings() -> None:
    out = _run_tool("zizmor", "--offline", "--no-progress", str(ACTION), str(ROOT / ".github" / "workflows"))
    assert "No findings to report" in out
    # One finding is ignored, in the open: `uses: ./` in the self-test (zizmor prefers the newer `$/`).
    assert "(1 ignored" in out
    assert ACTION.read_text().count("zizmor: ignore") == 0
    assert sum(w.read_text().count("zizmor: ignore") for w in WORKFLOWS) == 1
    assert "uses: ./ # zizmor: ignore[self-repository]" in (ROOT / ".github/workflows/self-test.yml").read_text()


def test_workflows_pin_actions_and_keep_least_privilege() -> None:
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        on = workflow[True]  # YAML 1.1 reads the key `on` as true
        release = path.name == "release.yml"  # a tag's workflow, each job with what it needs: tests/test_release.py
        assert release or ("push" in on and "pull_request" in on), path.name
        assert workflow["permissions"] == ({} if release else {"contents": "read"}), path.name
        for name, job in workflow["jobs"].items():
            assert release or "permissions" not in job or set(job["permissions"].values()) <= {"read", "none"}, name
            assert job["timeout-minutes"] <= 90, name
            for step in job["steps"]:
                uses = step.get("uses")
                if uses and uses != "./":
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
                if uses and uses.startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
                assert "${{" not in step.get("run", ""), (path.name, step.get("name"))


def test_the_self_test_scaffolds_from_the_template_and_runs_this_action() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/self-test.yml").read_text(encoding="utf-8"))
    dispatch = workflow[True]["workflow_dispatch"]
    assert dispatch["inputs"]["trigger"]["options"] == ["blob", "http", "service-bus-queue"]
    [job] = workflow["jobs"].values()
    steps = {s.get("name", s.get("uses")): s for s in job["steps"]}
    scaffold = steps["Scaffold a model repo from template/"]
    assert "cookiecutter" in scaffold["run"] and " template" in scaffold["run"]
    action_step = steps["Run the action on it (target local)"]
    assert action_step["uses"] == "./" and action_step["with"]["target"] == "local"
    assert action_step["with"]["model-repo"] == "scaffold/self-test"
    check = steps["Check the action's outputs"]
    assert check["env"]["TEST_RESULT"] == "${{ steps.modelfunc.outputs.test-result }}"
    assert 'test "$TEST_RESULT" = pass' in check["run"]
    pinned = (ROOT / ".github/self-test-requirements.txt").read_text()
    assert re.search(r"^cookiecutter==[\d.]+$", pinned, flags=re.M)


def test_no_expression_inside_run_and_inputs_reach_scripts_through_env() -> None:
    action = _action()
    declared = set(action["inputs"])
    steps = action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"
    consumed = set()
    for s in steps:
        if "run" in s:
            assert "${{" not in s["run"], s["name"]
            assert s["shell"] == "bash"
        for key, value in (s.get("env") or {}).items():
            m = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", str(value))
            if key.startswith("INPUT_") and m:
                assert key == "INPUT_" + m.group(1).upper().replace("-", "_"), key
                assert m.group(1) in declared
                consumed.add(m.group(1))
            elif key.startswith("INPUT_"):  # from another step's output, or the commit
                assert re.fullmatch(r"\$\{\{ (steps\.[a-z-]+\.outputs\.[a-z-]+|github\.sha) \}\}", value), value
    # Every input is used: by a script, or (python-version) by setup-python; the rest only in `if:`.
    conditions = " ".join(str(s.get("if", "")) for s in steps)
    used_in_if = {name for name in declared if f"inputs.{name}" in conditions}
    # A deprecated input (deprecationMessage: GitHub warns whoever still passes it) is declared so that old
    # workflows keep working, and reaches nothing.
    deprecated = {name for name, spec in action["inputs"].items() if spec.get("deprecationMessage")}
    assert deprecated == {"install-requirements"}
    assert not deprecated & consumed
    assert declared - consumed - used_in_if - deprecated == {"python-version"}
    assert {"target", "swap"} <= used_in_if


def test_action_inputs_and_outputs_are_documented_and_mapped() -> None:
    action = _action()
    assert action["branding"]["icon"] and action["branding"]["color"]
    for name, spec in action["inputs"].items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", name), name
        assert spec["description"] and "default" in spec, name
    for name in ("model-repo", "config", "target", "app-name", "resource-group", "location", "storage-prefix",
                 "registry", "slot-name", "hosting-plan", "subscription-id", "tenant-id", "client-id",
                 "run-blob-test", "blob-test-timeout", "python-version"):
        assert name in action["inputs"]
    assert action["inputs"]["target"]["default"] == "local"
    assert set(action["outputs"]) == {"image", "app-url", "slot-url", "test-result", "report-path", "golden"}
    for spec in action["outputs"].values():
        assert spec["description"] and spec["value"].startswith("${{ ")
    steps = [s.get("id") for s in action["runs"]["steps"]]
    assert steps == ["python", "pip-key", "pip-cache", "install", "azurite", "up", "package", "deploy", "test",
                     "swap"]


def test_setup_python_is_pinned_by_commit_and_leaves_the_environment_alone() -> None:
    setup = next(s for s in _action()["runs"]["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert re.fullmatch(r"actions/setup-python@[0-9a-f]{40}", setup["uses"])
    assert setup["with"]["update-environment"] is False
    for s in _action()["runs"]["steps"]:
        if "uses" in s:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", s["uses"]), s["uses"]


def test_the_template_workflow_only_passes_inputs_the_action_declares() -> None:
    workflow = next((ROOT / "template").glob("*/.github/workflows/deploy.yml")).read_text(encoding="utf-8")
    block = workflow.rsplit("with:{% raw %}", 1)[1].split("{% endraw %}", 1)[0]  # the modelfunc step
    passed = set(re.findall(r"^\s+([a-z-]+):", block, flags=re.M))
    assert "model-repo" in passed and "run-blob-test" in passed
    assert passed <= set(_action()["inputs"]), passed - set(_action()["inputs"])


def test_the_steps_read_only_inputs_the_action_declares_or_hands_over() -> None:
    """Every get_input/get_bool/get_float/get_optional in the action wing names an input of action.yml, or a value
    one step hands to the next (the step outputs image, deployment, golden)."""
    source = (ROOT / "generator/modelfunc/action/steps.py").read_text(encoding="utf-8")
    read = set(re.findall(r"io\.get_(?:input|bool|float|optional)\(\"([a-z-]+)\"", source))
    handed_over = {"image", "deployment", "golden"}
    assert read - handed_over <= set(_action()["inputs"]), read - handed_over - set(_action()["inputs"])
    assert {"registry-username", "registry-password", "pull"} <= read  # the package step's, declared and passed
    for script in (ROOT / "scripts").glob("*.py"):
        assert "INPUT_" not in script.read_text(encoding="utf-8").split('"""', 2)[2], script.name  # thin
