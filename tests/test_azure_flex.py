"""Flex Consumption, by contract: the rendered app zipped with vendored dependencies, OneDeploy to the scm
endpoint, the blob trigger on the EventGrid source with its subscription, read before write."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from azurefake import BLOBS_KEY, SUB, TOKEN, FakeArm, FakeCredential
from modelfunc.azure import DeployOptions, PipelineSettings
from modelfunc.azure.flex import deploy_flex
from modelfunc.config import load_project

RG = f"/subscriptions/{SUB}/resourceGroups/diab-rg"
SITE = f"{RG}/providers/Microsoft.Web/sites/diab-app"


def vendor(requirements: Path, dest: Path, python_version: str) -> None:
    """Stands in for pip (which needs the network): one package per requirement line, deterministic."""
    for line in requirements.read_text().splitlines():
        name = line.split("=")[0].split(">")[0].split("<")[0].strip().replace("-", "_").lower()
        if name and not name.startswith("#"):
            (dest / name).mkdir(exist_ok=True)
            (dest / name / "__init__.py").write_text(f"# {line} for {python_version}\n")


@pytest.fixture
def arm() -> FakeArm:
    arm = FakeArm()
    arm.zip_functions = ["score_blob"]
    return arm


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
    assert [(r.method, r.path, r.query) for r in publish] == [
        ("POST", "/api/publish", {"type": "zip", "RemoteBuild": "false"})]
    assert publish[0].authorization == f"Bearer {TOKEN}"
    with zipfile.ZipFile(io.BytesIO(arm.published["diab-app"])) as zf:
        names = set(zf.namelist())
        function_app = zf.read("function_app.py").decode()
    assert {"function_app.py", "host.json", "requirements.txt", "modelfunc_runtime.py", "score.py"} <= names
    assert "local.settings.json" not in names
    assert ".python_packages/lib/site-packages/azure_functions/__init__.py" in names
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
    assert [r.path for r in arm.requests if r.host.endswith(".scm.azurewebsites.net")] == ["/api/publish"]


def test_flex_dry_run_uploads_nothing_and_plans_every_resource(arm: FakeArm, example) -> None:  # noqa: ANN001
    project = load_project(example("diabetes-blob"))
    result = flex(arm, project, dry_run=True)
    assert arm.mutating() == [] and arm.published == {}
    text = result.plan.render()
    assert "+ create    plan diab-app-plan" in text and "~ update    package of diab-app" in text
    assert "+ MODELFUNC_PACKAGE_SHA256" in text
    assert "+ create    event subscription diab-app-score_blob" in text
