"""`modelfunc deploy` / `modelfunc destroy`: option errors from the real CLI process (no Azure needed), and
the verbs in-process against the in-test ARM model (the transport and the credential swapped in)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from modelfunc.cli import main
from support.azurefake import SUB, FakeArm
from support.core import run_modelfunc

IMAGE = "myreg.azurecr.io/diabetes@sha256:" + "a" * 64


# `arm` (support/plugin.py) behind the clients the CLI builds, its sign-in a stand-in credential.
pytestmark = pytest.mark.arm(images={IMAGE: ["score_blob"]}, clients=True,
                             credential="modelfunc.cli.azure_verbs._azure_credential")


def args(repo: object, *extra: str) -> list[str]:
    return ["deploy", str(repo), "--image", IMAGE, "--subscription-id", SUB, "--app-name", "diab-app",
            "--location", "westeurope", "--storage-prefix", "diab", *extra]


@pytest.mark.parametrize(("extra", "expected"), [
    (("--image", "myreg.azurecr.io/diabetes:latest"), "image: 'myreg.azurecr.io/diabetes:latest' is not an image "
                                                       "by digest"),
    (("--storage-prefix", "NO"), "storage-prefix: 'NO' is not a valid storage prefix"),
    (("--slot-name", "production"), "slot-name:"),
    (("--hosting-plan", "consumption"), "Invalid value for '--hosting-plan'"),
])
def test_bad_options_exit_non_zero_naming_the_option(example, extra: tuple[str, ...], expected: str) -> None:  # noqa: ANN001
    repo = example("diabetes-blob")
    proc = run_modelfunc("deploy", str(repo), "--image", IMAGE, "--subscription-id", SUB, *extra,
                         env={"AZURE_CLIENT_ID": "", "ACTIONS_ID_TOKEN_REQUEST_URL": ""})
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr


def test_missing_subscription_is_named_before_signing_in(example) -> None:  # noqa: ANN001
    proc = run_modelfunc("deploy", str(example("diabetes-blob")), "--image", IMAGE,
                         env={"AZURE_SUBSCRIPTION_ID": ""})
    assert proc.returncode == 2 and "subscription-id:" in proc.stderr and "AZURE_SUBSCRIPTION_ID" in proc.stderr


def test_dry_run_prints_the_plan_and_changes_nothing(arm: FakeArm, example) -> None:  # noqa: ANN001
    result = CliRunner().invoke(main, args(example("diabetes-blob"), "--dry-run"))
    assert result.exit_code == 0, result.output
    assert "+ create    plan diab-app-plan  (Linux, EP1)" in result.stdout
    assert arm.arm_requests() and arm.mutating() == []


def test_deploy_no_test_swaps_and_prints_the_app_url(arm: FakeArm, example, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "deploy.json"
    result = CliRunner().invoke(main, args(example("diabetes-blob"), "--no-test", "--json", str(out)))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "https://diab-app.azurewebsites.net"
    assert any(r.path.endswith("slotsswap") for r in arm.mutating())
    assert '"state": "Healthy"' in out.read_text()


def test_deploy_failure_exits_1_with_the_step(arm: FakeArm, example) -> None:  # noqa: ANN001
    arm.fail("PUT", "/serverfarms/diab-app-plan", 500, times=50)
    result = CliRunner().invoke(main, args(example("diabetes-blob"), "--no-test"))
    assert result.exit_code == 1
    assert "error: create plan diab-app-plan failed: 500" in result.stderr
    assert not any(r.path.endswith("/sites/diab-app") for r in arm.mutating())


def test_destroy_verb(arm: FakeArm, example) -> None:  # noqa: ANN001
    repo = example("diabetes-blob")
    assert CliRunner().invoke(main, args(repo, "--no-test")).exit_code == 0
    result = CliRunner().invoke(main, ["destroy", "--app-name", "diab-app", "--subscription-id", SUB])
    assert result.exit_code == 0, result.output
    assert "- delete    function app diab-app (and its slots)" in result.stdout
    assert arm.get(f"/subscriptions/{SUB}/resourceGroups/diab-app-rg") is None
