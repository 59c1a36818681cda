"""target azure in the action: the step wiring (harness + fp), the ACR sign-in, and the deploy hand-off.

No Azure is reachable here. The four azure steps (package, deploy, blob-test, swap) therefore cannot run:
pytest-subprocess fakes each one, answering as its script would (the outputs it writes, its exit status),
and the harness runs the real action.yml around them — expressions, ``if:`` conditions, env, outputs.
The tests assert exactly what each step is started with and which steps run. What the scripts call is
tested by contract in test_azure_*.py; the ACR token exchange below runs against a real local HTTP server.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from azure.core.credentials import AccessToken
from modelfunc.action.handoff import load_deployment, save_deployment
from modelfunc.azure import registry
from modelfunc.azure.results import ServiceState, SlotDeployment
from modelfunc.errors import CredentialError, OptionError
from support.act_harness import Act
from support.action_step import Step, load_script
from support.httpstub import QuietHandler, send_json, serving

SUB = "11111111-2222-3333-4444-555555555555"
IMAGE = "myreg.azurecr.io/diabetes-http@sha256:" + "ab" * 32
AZURE_INPUTS = {"target": "azure", "model_repo": "model", "subscription_id": SUB,
                "tenant_id": "22222222-0000-0000-0000-000000000000",
                "client_id": "33333333-0000-0000-0000-000000000000", "app_name": "diabetes-http",
                "resource_group": "scorers-rg", "location": "westeurope", "registry": "myreg"}


def _answer(outputs: dict[str, str], returncode: int = 0, record: list | None = None):  # noqa: ANN202
    """A fake step: writes ``outputs`` to its $GITHUB_OUTPUT as the script would, exits ``returncode``."""
    def callback(process) -> None:  # noqa: ANN001
        env = process.kwargs["env"]
        with open(env["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
            for name, value in outputs.items():
                f.write(f"{name}={value}\n")
        if record is not None:
            record.append({k: v for k, v in env.items() if k.startswith("INPUT_")})
        process.returncode = returncode
    return callback


def _azure(act: Act, *, test_rc: int = 0, changed: str = "true") -> dict[str, list]:
    seen: dict[str, list] = {name: [] for name in ("package", "deploy", "test", "swap")}
    deployment = str(act.temp / "modelfunc-deployment.json")
    fakes = {
        "package": ({"image": IMAGE, "digest": IMAGE.split("@")[1]}, 0),
        "deploy": ({"app-url": "https://diabetes-http.azurewebsites.net", "deployment": deployment,
                    "slot-url": "https://diabetes-http-staging.azurewebsites.net", "state": "Healthy",
                    "changed": changed}, 0),
        "test": ({"test-result": "pass" if test_rc == 0 else "fail", "report-path": "/r.json"}, test_rc),
        "swap": ({"app-url": "https://diabetes-http.azurewebsites.net", "swapped": "true"}, 0),
    }
    for step_id, (outputs, rc) in fakes.items():
        act.fp.register(act.runner.command(step_id), callback=_answer(outputs, rc, seen[step_id]))
    return seen


def test_target_azure_runs_package_deploy_test_swap_in_order_with_their_inputs(act: Act) -> None:
    act.repo("diabetes-http")
    seen = _azure(act)
    run = act.run(**AZURE_INPUTS)
    assert run.conclusion == "success", run.log.text()
    ran = [s.id for s in run.steps if s.outcome != "skipped"]
    assert ran == ["python", "pip-key", "pip-cache", "install", "package", "deploy", "test", "swap"]
    assert run.step("up").outcome == "skipped" and run.step("azurite").outcome == "skipped"
    assert list(act.fp.calls) == [act.runner.command(s) for s in ("pip-key", "install", "package", "deploy",
                                                                   "test", "swap")]
    [package], [deploy], [test], [swap] = seen["package"], seen["deploy"], seen["test"], seen["swap"]
    assert package == {"INPUT_MODEL_REPO": "model", "INPUT_CONFIG": "modelfunc.yaml", "INPUT_TARGET": "azure",
                       "INPUT_REGISTRY": "myreg", "INPUT_TENANT_ID": AZURE_INPUTS["tenant_id"],
                       "INPUT_CLIENT_ID": AZURE_INPUTS["client_id"],
                       "INPUT_CLOUD": "AzureCloud", "INPUT_ARM_ENDPOINT": "",
                       # where the registry is created when the subscription has none (a new user's first push)
                       "INPUT_SUBSCRIPTION_ID": SUB, "INPUT_APP_NAME": deploy["INPUT_APP_NAME"],
                       "INPUT_RESOURCE_GROUP": deploy["INPUT_RESOURCE_GROUP"],
                       "INPUT_LOCATION": deploy["INPUT_LOCATION"], "INPUT_BASE_IMAGE": "", "INPUT_PULL": "true",
                       "INPUT_REGISTRY_USERNAME": "", "INPUT_REGISTRY_PASSWORD": ""}  # the tag: GITHUB_SHA
    assert all(step["INPUT_CLOUD"] == "AzureCloud" and step["INPUT_ARM_ENDPOINT"] == ""
               for step in (deploy, test, swap))  # every Azure step signs in to the same cloud
    assert deploy["INPUT_IMAGE"] == IMAGE  # the package step's output, by digest
    assert deploy["INPUT_SUBSCRIPTION_ID"] == SUB and deploy["INPUT_SLOT_NAME"] == "staging"
    assert deploy["INPUT_HOSTING_PLAN"] == "premium-container" and deploy["INPUT_SKU"] == "EP1"
    assert test["INPUT_DEPLOYMENT"] == swap["INPUT_DEPLOYMENT"] == str(act.temp / "modelfunc-deployment.json")
    assert "INPUT_CONNECTION_STRING" not in test  # the slot's storage is reached by identity
    assert run.outputs == {"image": IMAGE, "app-url": "https://diabetes-http.azurewebsites.net",
                           "slot-url": "https://diabetes-http-staging.azurewebsites.net", "test-result": "pass",
                           "report-path": "/r.json", "golden": ""}


def test_a_failed_test_on_the_slot_never_swaps(act: Act) -> None:
    act.repo("diabetes-http")
    seen = _azure(act, test_rc=1)
    run = act.run(**AZURE_INPUTS)
    assert run.conclusion == "failure"
    assert run.step("test").outcome == "failure" and run.step("swap").outcome == "skipped"
    assert seen["swap"] == [] and act.runner.command("swap") not in act.fp.calls
    assert run.outputs["test-result"] == "fail"
    assert run.outputs["app-url"] == "https://diabetes-http.azurewebsites.net"  # production, as it was


def test_an_unchanged_deploy_skips_the_test_and_swap_false_keeps_the_slot(act: Act) -> None:
    act.repo("diabetes-http")
    seen = _azure(act, changed="false")
    run = act.run(**AZURE_INPUTS, swap="false")
    assert run.conclusion == "success"
    assert run.step("test").outcome == "skipped" and run.step("swap").outcome == "skipped"
    assert seen["test"] == [] and seen["swap"] == []
    assert run.outputs["test-result"] == ""


def test_flex_deploys_without_an_image_or_a_swap(act: Act) -> None:
    act.repo("diabetes-http")
    seen = _azure(act)
    run = act.run(**AZURE_INPUTS, hosting_plan="flex")
    assert run.conclusion == "success"
    assert run.step("package").outcome == "skipped" and run.step("swap").outcome == "skipped"
    assert seen["deploy"][0]["INPUT_IMAGE"] == "" and seen["deploy"][0]["INPUT_HOSTING_PLAN"] == "flex"
    assert run.outputs["image"] == ""


def test_run_blob_test_false_reports_skipped(act: Act) -> None:
    act.repo("diabetes-http")
    seen = _azure(act)
    run = act.run(**AZURE_INPUTS, run_blob_test="false")
    assert run.conclusion == "success" and seen["test"] == [] and len(seen["swap"]) == 1
    assert run.outputs["test-result"] == "skipped"


# --------------------------------------------------------------------- ACR sign-in, without a password


class _Token:
    """Tokens per audience: the ARM one, and ACR's own (a registry may accept only that)."""

    TOKENS = {"https://management.azure.com/.default": "aad-token-for-the-test",
              "https://containerregistry.azure.net/.default": "acr-audience-token"}

    def get_token(self, *scopes: str, **_: object) -> AccessToken:
        [scope] = scopes
        return AccessToken(self.TOKENS[scope], 2**31)


@pytest.fixture
def acr():  # noqa: ANN201
    """A real HTTP server answering ACR's /oauth2/exchange; records each form it receives."""
    state = {"status": 200, "forms": [], "accepts": None}  # accepts: the only token taken, when set

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            state["forms"].append((self.path, self.headers["Content-Type"], parse_qs(body)))
            status = state["status"]
            if state["accepts"] and parse_qs(body)["access_token"] != [state["accepts"]]:
                status = 401
            send_json(self, status, {"refresh_token": "acr-refresh-SECRET"} if status == 200 else {})

    with serving(Handler) as server:
        state["server"] = f"127.0.0.1:{server.server_address[1]}"
        yield state


def test_the_registry_login_exchanges_the_identitys_token(acr) -> None:  # noqa: ANN001
    user, password = registry.docker_credentials(acr["server"], _Token(), scheme="http")
    assert (user, password) == (registry.TOKEN_USER, "acr-refresh-SECRET")
    [(path, content_type, form)] = acr["forms"]
    assert path == "/oauth2/exchange" and content_type == "application/x-www-form-urlencoded"
    assert form == {"grant_type": ["access_token"], "service": [acr["server"]],
                    "access_token": ["aad-token-for-the-test"]}


def test_a_refused_exchange_says_to_grant_acrpush(acr) -> None:  # noqa: ANN001
    acr["status"] = 401
    with pytest.raises(CredentialError, match="refused") as e:
        registry.docker_credentials(acr["server"], _Token(), scheme="http", retry_backoff_factor=0)
    assert "AcrPush" in (e.value.hint or "")
    assert [form["access_token"] for _, _, form in acr["forms"]] == [["aad-token-for-the-test"],
                                                                    ["acr-audience-token"]]  # both audiences tried


def test_a_registry_that_takes_only_acr_audience_tokens_gets_one(acr) -> None:  # noqa: ANN001
    """A registry with authentication-as-ARM disabled refuses the ARM token; ACR's own audience is tried next."""
    acr["accepts"] = "acr-audience-token"
    user, password = registry.docker_credentials(acr["server"], _Token(), scheme="http", retry_backoff_factor=0)
    assert (user, password) == (registry.TOKEN_USER, "acr-refresh-SECRET")
    assert [form["access_token"] for _, _, form in acr["forms"]] == [["aad-token-for-the-test"],
                                                                    ["acr-audience-token"]]


def test_registry_names_become_login_servers() -> None:
    assert registry.login_server("MyReg") == "myreg.azurecr.io"
    assert registry.login_server("myreg.azurecr.io") == "myreg.azurecr.io"
    assert registry.login_server("https://myreg.azurecr.io/") == "myreg.azurecr.io"
    with pytest.raises(OptionError) as e:
        registry.login_server(" ")
    assert e.value.field == "registry"


# ------------------------------------------------------------------------------- the step hand-off


def test_the_deployment_travels_between_steps_as_json(tmp_path: Path) -> None:
    deployment = SlotDeployment(SUB, "rg", "app", "staging", IMAGE, "https://app.azurewebsites.net",
                                "https://app-staging.azurewebsites.net", ServiceState.HEALTHY, True, ("score",),
                                "https://appstag.blob.core.windows.net")
    path = save_deployment(deployment, tmp_path / "d" / "deployment.json")
    back = load_deployment(path)
    assert back.summary() == deployment.summary() and back.state is ServiceState.HEALTHY
    (tmp_path / "bad.json").write_text('{"app_name": "x"}')
    with pytest.raises(OptionError, match="not a deployment the deploy step wrote") as e:
        load_deployment(tmp_path / "bad.json")
    assert e.value.field == "deployment"


# ------------------------------------------------- the real step scripts, chained, against the ARM model




# `arm` (support/plugin.py) behind the clients every script builds, signing in with a stand-in credential.
@pytest.mark.arm(clients=True, credential="modelfunc.azure.credentials.get_credential")
def test_deploy_then_swap_scripts_hand_the_deployment_over(arm, example, step: Step, capfd) -> None:  # noqa: ANN001
    """What the fakes above answer is what the real scripts write: deploy.py's outputs feed swap.py."""
    from support.azurefake import SUB as ARM_SUB

    image = "myreg.azurecr.io/diabetes@sha256:" + "c" * 64
    arm.image_functions[image] = ["score_blob"]
    repo = example("diabetes-blob")
    step.inputs(model_repo=str(repo), image=image, subscription_id=ARM_SUB, app_name="diab-app",
                location="westeurope", storage_prefix="diab")
    assert load_script("deploy").main([]) == 0, capfd.readouterr()
    out = step.outputs()
    assert out["changed"] == "true" and out["state"] == "Healthy"
    assert out["app-url"] == "https://diab-app.azurewebsites.net"
    assert out["slot-url"] == "https://diab-app-staging.azurewebsites.net"
    assert json.loads(Path(out["deployment"]).read_text())["image"] == image
    summary = step.summary_text()
    assert "### modelfunc deploy" in summary and "| state | Healthy |" in summary and "| app | diab-app |" in summary
    assert f"| image | <code>{image}</code> |" in summary and "| functions | score_blob |" in summary
    assert not any(r.path.endswith("slotsswap") for r in arm.mutating())  # deploy never swaps

    step.output.write_text("")
    step.inputs(deployment=out["deployment"])
    assert load_script("swap").main([]) == 0, capfd.readouterr()
    assert step.outputs() == {"app-url": "https://diab-app.azurewebsites.net", "swapped": "true"}
    assert [r.short()[1].rsplit("/", 1)[-1] for r in arm.mutating() if r.path.endswith("slotsswap")] == ["slotsswap"]

    # The next push with the same image: nothing changes, and swap.py has nothing to do.
    before = len(arm.mutating())
    step.output.write_text("")
    step.inputs(deployment="")
    assert load_script("deploy").main([]) == 0
    again = step.outputs()
    assert again["changed"] == "false"
    step.output.write_text("")
    step.inputs(deployment=again["deployment"])
    assert load_script("swap").main([]) == 0
    assert step.outputs()["swapped"] == "false"
    assert len(arm.mutating()) == before
    logged = capfd.readouterr()
    assert "AccountKey" not in logged.out + logged.err + step.summary_text()
