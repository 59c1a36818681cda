"""The action's steps: scripts/*.py (called in-process through their main()) and the action wing's step functions.

The scripts run as a step would: GITHUB_ACTIONS=true, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY pointing at
files, inputs as INPUT_* variables. Everything under them is real (render, local host, Azurite, storage).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from modelfunc.action import io, steps
from support.action_step import Step, load_script

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
    from modelfunc.azure import PipelineSettings
    from support.azurefake import SUB, FakeArm, FakeCredential

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
