"""Flex Consumption, by contract: the rendered app zipped with vendored dependencies, OneDeploy to the scm
endpoint, the blob trigger on the EventGrid source with its subscription, read before write."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
from modelfunc.azure import DeployOptions, PipelineSettings
from modelfunc.azure.flex import deploy_flex
from modelfunc.config import load_project
from modelfunc.errors import DeployError
from support.azurefake import BLOBS_KEY, SUB, TOKEN, FakeArm, FakeCredential

RG = f"/subscriptions/{SUB}/resourceGroups/diab-rg"
SITE = f"{RG}/providers/Microsoft.Web/sites/diab-app"


def vendor(requirements: Path, dest: Path, python_version: str) -> None:
    """Stands in for pip (which needs the network): one package per requirement line, deterministic."""
    for line in requirements.read_text().splitlines():
        name = line.split("=")[0].split(">")[0].split("<")[0].strip().replace("-", "_").lower()
        if name and not name.startswith("#"):
            (dest / name).mkdir(exist_ok=True)
            (dest / name / "__init__.py").write_text(f"# {line} for {python_version}\n")


pytestmark = pytest.mark.arm(zip_functions=["score_blob"])  # `arm`: support/plugin.py


def flex(arm: FakeArm, project, **kw: object):  # noqa: ANN001, ANN201
    options = DeployOptions(subscription_id=SUB, app_name="diab-app", resource_group="diab-rg", location="westeurope",
                            storage_prefix="diab", hosting_plan="flex", timeout=60)
    return deploy_flex(project, options, credential=FakeCredential(), vendor=vendor, sleep=lambda s: None,
                       settings=PipelineSettings(transport=arm.transport(), polling_interval=0), **kw)


def test_flex_zip_deploys_the_app_with_vendored_dependencies_and_event_grid(arm: FakeArm, example, capfd) -> None:  # noqa: ANN001
    project = load_project(example("diabetes-blob"))
    deployment = flex(arm, project, progress=print)
    assert deployment.state.value == "Healthy" and deployment.slot is None

    bodies = {(r.method, r.path): r.body for r in arm.requests}
    plan_body = bodies[("PUT", f"{RG}/providers/Microsoft.Web/serverfarms/diab-app-plan")]
    assert plan_body["sku"] == {"name": "FC1", "tier": "FlexConsumption"} and plan_body["properties"]["reserved"]
    site = bodies[("PUT", SITE)]
    assert site["kind"] == "functionapp,linux" and site["identity"] == {"type": "SystemAssigned"}
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"] == {
        "type": "blobContainer", "value": "https://diabhost.blob.core.windows.net/app-package",
        "authentication": {"type": "SystemAssignedIdentity"}}

    publish = [r for r in arm.requests if r.host == "diab-app.scm.azurewebsites.net"]
    (deployment_id,) = [k for k in arm.kudu if k != "latest"]
    assert [(r.method, r.path, r.query) for r in publish] == [  # the 202 followed by its id until it is Success
        ("POST", "/api/publish", {"type": "zip", "RemoteBuild": "false"}),
        ("GET", f"/api/deployments/{deployment_id}", {}), ("GET", f"/api/deployments/{deployment_id}", {})]
    assert {r.authorization for r in publish} == {f"Bearer {TOKEN}"}
    out, _ = capfd.readouterr()
    assert f"package of diab-app: Building (0 s)\n    package of diab-app: deployed (deployment {deployment_id})" in out
    print(out)  # read again below
    with zipfile.ZipFile(io.BytesIO(arm.published["diab-app"])) as zf:
        names = set(zf.namelist())
        function_app = zf.read("function_app.py").decode()
    assert {"function_app.py", "host.json", "requirements.txt", "modelfunc_runtime.py", "score.py"} <= names
    assert "local.settings.json" not in names
    assert ".python_packages/lib/site-packages/azure_functions/__init__.py" in names
    # and its bytecode, compiled here by this Python (the app's 3.11): Flex mounts the package read-only
    tag = sys.implementation.cache_tag
    assert f".python_packages/lib/site-packages/azure_functions/__pycache__/__init__.{tag}.pyc" in names
    assert [n for n in names if "__pycache__" in n and not n.startswith(".python_packages/")] == []
    assert "source=func.BlobSource.EVENT_GRID" in function_app  # Flex does not poll containers

    settings = arm.get(f"{SITE}/config/appsettings")["properties"]
    assert settings["AzureWebJobsStorage__accountName"] == "diabhost"
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings and "FUNCTIONS_EXTENSION_VERSION" not in settings
    assert len(settings["MODELFUNC_PACKAGE_SHA256"]) == 64

    topic = bodies[("PUT", f"{RG}/providers/Microsoft.EventGrid/systemTopics/diabtrig-events")]
    assert topic["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert topic["properties"]["source"].endswith("/storageAccounts/diabtrig")
    subscription = bodies[("PUT", f"{RG}/providers/Microsoft.EventGrid/systemTopics/diabtrig-events/"
                                  "eventSubscriptions/diab-app-score_blob")]
    assert subscription["properties"]["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/input/"
    assert subscription["properties"]["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    url = subscription["properties"]["destination"]["properties"]["endpointUrl"]
    assert url == ("https://diab-app.azurewebsites.net/runtime/webhooks/blobs?functionName=Host.Functions.score_blob"
                   f"&code={BLOBS_KEY}")
    out, err = capfd.readouterr()
    assert BLOBS_KEY not in out + err and TOKEN not in out + err
    assert BLOBS_KEY not in json.dumps(deployment.plan.to_dict())


def test_flex_redeploy_unchanged_sends_nothing_and_a_code_change_only_the_package(arm: FakeArm, example) -> None:  # noqa: ANN001
    repo = example("diabetes-blob")
    project = load_project(repo)
    flex(arm, project)
    arm.requests.clear()
    again = flex(arm, project)
    assert arm.mutating() == [] and not any(r.host.endswith(".scm.azurewebsites.net") for r in arm.requests)
    assert again.changed is False

    (repo / "score.py").write_text((repo / "score.py").read_text() + "\n# changed\n")
    arm.requests.clear()
    flex(arm, load_project(repo))
    mutating = [r.short() for r in arm.mutating()]
    assert mutating == [("PUT", "/resourceGroups/diab-rg/providers/Microsoft.Web/sites/diab-app/config/appsettings")]
    assert [r.path for r in arm.requests if r.host.endswith(".scm.azurewebsites.net")][0] == "/api/publish"


def test_flex_dry_run_uploads_nothing_and_plans_every_resource(arm: FakeArm, example) -> None:  # noqa: ANN001
    project = load_project(example("diabetes-blob"))
    result = flex(arm, project, dry_run=True)
    assert arm.mutating() == [] and arm.published == {}
    text = result.plan.render()
    assert "+ create    plan diab-app-plan" in text and "~ update    package of diab-app" in text
    assert "+ MODELFUNC_PACKAGE_SHA256" in text
    assert "+ create    event subscription diab-app-score_blob" in text


class Clock:
    """Time that passes only when the deploy sleeps (and a little per reading): deadlines without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        self.now += 0.01
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flex_timed(arm: FakeArm, project, clock: Clock, **kw: object):  # noqa: ANN001, ANN201
    options = DeployOptions(subscription_id=SUB, app_name="diab-app", resource_group="diab-rg", location="westeurope",
                            storage_prefix="diab", hosting_plan="flex", timeout=60)
    return deploy_flex(project, options, credential=FakeCredential(), vendor=vendor, sleep=clock.sleep, clock=clock,
                       settings=PipelineSettings(transport=arm.transport(), polling_interval=5), **kw)


def test_flex_create_body_has_no_ftps_state_and_the_host_settings(arm: FakeArm, example) -> None:  # noqa: ANN001
    flex(arm, load_project(example("diabetes-blob")))
    site = next(r.body for r in arm.requests if (r.method, r.path) == ("PUT", SITE))
    config = site["properties"]["siteConfig"]
    assert "ftpsState" not in config  # Flex Consumption refuses it (the fake answers 400, as Azure does)
    assert {"name": "AzureWebJobsStorage__accountName", "value": "diabhost"} in config["appSettings"]


def test_flex_failed_kudu_deployment_is_an_error_naming_it_and_its_log(arm: FakeArm, example) -> None:  # noqa: ANN001
    arm.kudu_outcomes = [(3, "Failed to extract the package: Central Directory corrupt.")]
    with pytest.raises(DeployError) as e:
        flex(arm, load_project(example("diabetes-blob")))
    (deployment_id,) = [k for k in arm.kudu if k != "latest"]
    assert f"Kudu deployment {deployment_id} ended Failed (Failed to extract the package" in e.value.message
    assert f"https://diab-app.scm.azurewebsites.net/api/deployments/{deployment_id}/log" in str(e.value.hint)
    # nothing after it: the package stamp is not written (the next deploy sends it again), no subscription
    assert "MODELFUNC_PACKAGE_SHA256" not in arm.get(f"{SITE}/config/appsettings")["properties"]
    assert not any("eventSubscriptions" in r.path for r in arm.requests) and arm.published == {}


def test_flex_kudu_deployment_that_does_not_finish_stops_at_the_deadline(arm: FakeArm, example) -> None:  # noqa: ANN001
    arm.kudu_outcomes = [(2, "Deploying")]  # never completes
    clock = Clock()
    lines: list[str] = []
    with pytest.raises(DeployError) as e:
        flex_timed(arm, load_project(example("diabetes-blob")), clock, progress=lines.append)
    assert "did not finish within 60 s (Kudu says: Deploying)" in e.value.message
    assert clock.now < 60 + 10 and set(clock.sleeps) == {5}  # polled at the pipeline's interval up to the deadline
    assert any(line.startswith("    package of diab-app: Building") for line in lines)
    assert any(line.startswith("    package of diab-app: Deploying") for line in lines)


def test_flex_publish_403_while_the_roles_propagate_is_retried(arm: FakeArm, example, capfd) -> None:  # noqa: ANN001
    arm.scm_faults = [403, 403]
    clock = Clock()
    deployment = flex_timed(arm, load_project(example("diabetes-blob")), clock, progress=print)
    assert deployment.state.value == "Healthy" and "diab-app" in arm.published
    posts = [r for r in arm.requests if r.host.endswith(".scm.azurewebsites.net") and r.method == "POST"]
    assert len(posts) == 3 and clock.sleeps[:2] == [10, 20]  # backoff
    out, _ = capfd.readouterr()
    assert "the zip deploy answered 403; a role granted moments ago takes minutes to apply: retry 1 in 10 s" in out
    assert "retry 2 in 20 s" in out


def test_flex_storage_403_inside_the_deployment_is_retried_too(arm: FakeArm, example) -> None:  # noqa: ANN001
    # what Kudu reports when the app's identity cannot write the package yet (azure-functions-core-tools#4346)
    arm.kudu_outcomes = [(3, "Failed to upload because Azure Storage responded with Forbidden : Response status "
                             "code does not indicate success: 403 (This request is not authorized to perform this "
                             "operation.).")]
    clock = Clock()
    lines: list[str] = []
    deployment = flex_timed(arm, load_project(example("diabetes-blob")), clock, progress=lines.append)
    assert deployment.state.value == "Healthy"
    assert [r["status"] for k, r in arm.kudu.items() if k != "latest"] == [3, 4]
    assert any("storage refused the app's identity" in line and "retry 1 in 10 s" in line for line in lines)


def test_flex_publish_403_past_the_bound_is_an_error_saying_why(arm: FakeArm, example) -> None:  # noqa: ANN001
    arm.scm_faults = [403] * 50
    clock = Clock()
    with pytest.raises(DeployError) as e:
        flex_timed(arm, load_project(example("diabetes-blob")), clock)
    assert "answered 403, still after" in e.value.message and "Website Contributor" in str(e.value.hint)
    assert clock.sleeps == [10, 20] and clock.now < 60  # bounded by the deploy's timeout (60 s here)


def test_flex_event_subscription_waits_for_the_app_and_retries_the_validation_handshake(
        arm: FakeArm, example, capfd) -> None:  # noqa: ANN001
    arm.webhook_down = 2  # Event Grid cannot validate the webhook twice (the blobs extension is not up yet)
    clock = Clock()
    deployment = flex_timed(arm, load_project(example("diabetes-blob")), clock, progress=print)
    assert deployment.state.value == "Healthy"
    puts = [i for i, r in enumerate(arm.requests) if r.method == "PUT" and "/eventSubscriptions/" in r.path]
    listed = [i for i, r in enumerate(arm.requests) if r.method == "GET" and r.path.endswith("/functions")]
    assert len(puts) == 3 and max(listed) < puts[0]  # created only once the app lists its function
    assert arm.get(f"{RG}/providers/Microsoft.EventGrid/systemTopics/diabtrig-events/eventSubscriptions/"
                   "diab-app-score_blob") is not None
    out, err = capfd.readouterr()
    assert "Event Grid's validation handshake with https://diab-app.azurewebsites.net/runtime/webhooks/blobs " \
           "failed (" in out and "Url validation" in out and "retry 2 in 20 s" in out
    assert BLOBS_KEY not in out + err


def test_flex_event_subscription_validation_failing_past_the_bound_is_an_error(arm: FakeArm, example) -> None:  # noqa: ANN001
    arm.webhook_down = 50
    clock = Clock()
    with pytest.raises(DeployError) as e:
        flex_timed(arm, load_project(example("diabetes-blob")), clock)
    assert "event subscription diab-app-score_blob: Event Grid's validation handshake" in e.value.message
    assert "troubleshoot-subscription-validation" in str(e.value.hint)
    assert BLOBS_KEY not in e.value.message + str(e.value.hint)


def test_kudu_is_asked_with_a_token_for_the_app_service_audience_as_az_does(arm: FakeArm, example) -> None:  # noqa: ANN001
    """az's OneDeploy asks for its cloud's app_service_resource_id (tests/azure/test_azure_facts.py compares the table
    with the installed azure-cli); ARM calls keep the ARM scope."""
    credential = FakeCredential()
    options = DeployOptions(subscription_id=SUB, app_name="diab-app", resource_group="diab-rg", location="westeurope",
                            storage_prefix="diab", hosting_plan="flex", timeout=60)
    deploy_flex(load_project(example("diabetes-blob")), options, credential=credential, vendor=vendor,
                sleep=lambda s: None, settings=PipelineSettings(transport=arm.transport(), polling_interval=0))
    assert arm.published["diab-app"]
    assert set(credential.scopes) == {("https://management.azure.com/.default",),
                                      ("https://appservice.azure.com/.default",)}
