"""Deploying to Azure, by contract: the real azure-mgmt clients and azure-core pipeline talk to an in-test
model of ARM state (tests/support/azurefake.py) through an injected transport that records every request.

No Azure is reachable here: these tests pin the request sequence and bodies against the real API shapes;
what Azure does with them (pulling the image, running the host) is not exercised.
"""

from __future__ import annotations

import json
import logging
import re
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError
from modelfunc.azure import DeployOptions, PipelineSettings, ServiceState, deploy, destroy, plan
from modelfunc.azure.credentials import SETUP_HINT
from modelfunc.azure.results import deployment_id
from modelfunc.config import load_project
from modelfunc.errors import CredentialError, DeployError, OptionError
from modelfunc.roundtrip import TestReport as Report
from modelfunc.roundtrip import round_trip
from support.azure_reference import (
    BLOB_TRIGGER_CONNECTION_ROLES,
    BUILTIN_ROLES,
    HOST_STORAGE_BLOB_TRIGGER_ROLES,
    HOST_STORAGE_DIAGNOSTICS_ROLES,
    HOST_STORAGE_ROLES,
)
from support.azurefake import DEPLOYER_OID, REGISTRY_ID, STORAGE_KEY, SUB, TOKEN, FakeArm, FakeCredential
from support.blobs import own_containers

IMAGE_A = "myreg.azurecr.io/diabetes@sha256:" + "a" * 64
IMAGE_B = "myreg.azurecr.io/diabetes@sha256:" + "b" * 64
RG = f"/subscriptions/{SUB}/resourceGroups/diab-rg"
SITE = f"{RG}/providers/Microsoft.Web/sites/diab-app"
REDIS_SECRET = "redis.example:6380,password=redis-SECRET-2718,ssl=True"
HAND_SECRET = "hand-SECRET-1618"


def passed(project, deployment) -> Report:  # noqa: ANN001
    return Report(True, "blob", "injected", "in")


def failed(project, deployment) -> Report:  # noqa: ANN001
    return Report(False, "blob", "injected", "in", error="injected failure")


pytestmark = pytest.mark.arm(images={IMAGE_A: ["score_blob"], IMAGE_B: ["score_blob"]})  # `arm`: support/plugin.py


def settings(arm: FakeArm, **kw: float) -> PipelineSettings:
    return PipelineSettings(transport=arm.transport(), polling_interval=0, **{"retry_backoff_factor": 0.5, **kw})


def options(**kw: object) -> DeployOptions:
    base: dict[str, object] = {"subscription_id": SUB, "app_name": "diab-app", "resource_group": "diab-rg",
                               "location": "westeurope", "storage_prefix": "diab", "timeout": 60}
    return DeployOptions(**{**base, **kw})  # type: ignore[arg-type]


def run_deploy(arm: FakeArm, project, image: str = IMAGE_A, test=passed, **kw: object):  # noqa: ANN001, ANN201
    return deploy(project, image, options(**kw), credential=FakeCredential(), settings=settings(arm),
                  blob_test=test, sleep=lambda s: None)


def role_put(scope_part: str) -> str:
    return rf"PUT {re.escape(scope_part)}/providers/Microsoft\.Authorization/roleAssignments/[0-9a-f-]{{36}}"


def role_list(scope_part: str) -> str:
    return rf"GET {re.escape(scope_part)}/providers/Microsoft\.Authorization/roleAssignments"


# ------------------------------------------------------------------------------------------ first deploy


def role_def(scope_part: str) -> str:
    return rf"GET {re.escape(scope_part)}/providers/Microsoft\.Authorization/roleDefinitions"


def test_first_deploy_sends_exactly_this_sequence(arm: FakeArm, project) -> None:  # noqa: ANN001
    result = run_deploy(arm, project)
    rg = "/resourceGroups/diab-rg/providers"
    acct = f"{rg}/Microsoft.Storage/storageAccounts"
    site = f"{rg}/Microsoft.Web/sites/diab-app"
    uami = f"{rg}/Microsoft.ManagedIdentity/userAssignedIdentities/diab-app-id"
    acr = "/resourceGroups/shared-rg/providers/Microsoft.ContainerRegistry/registries/myreg"
    expected = [
        "GET /resourcegroups/diab-rg",
        "GET /providers/Microsoft.ContainerRegistry/registries",
        "PUT /resourcegroups/diab-rg",
        f"GET {uami}", f"PUT {uami}",  # the identity first: everything after uses it
        f"GET {acct}/diabhost", f"PUT {acct}/diabhost", "GET /fake-operations/.*",
        f"GET {acct}/diabtrig", f"PUT {acct}/diabtrig", "GET /fake-operations/.*",
        *(f"PUT {acct}/diabtrig/blobServices/default/containers/{c}"
          for c in ("input", "output", "errors", "modelfunc-stamps")),
        f"GET {acct}/diabstag", f"PUT {acct}/diabstag", "GET /fake-operations/.*",
        *(f"PUT {acct}/diabstag/blobServices/default/containers/{c}"
          for c in ("input", "output", "errors", "modelfunc-stamps")),
        f"GET {rg}/Microsoft.Web/serverfarms/diab-app-plan", f"PUT {rg}/Microsoft.Web/serverfarms/diab-app-plan",
        "GET /fake-operations/.*",
        # Its roles, each looked up by name once, before any site exists.
        role_list(acr), role_def(acr), role_put(acr),
        role_list(f"{acct}/diabhost"), *[role_def(f"{acct}/diabhost"), role_put(f"{acct}/diabhost")] * 4,
        role_list(f"{acct}/diabtrig"), role_put(f"{acct}/diabtrig"), role_put(f"{acct}/diabtrig"),
        role_list(f"{acct}/diabstag"), role_put(f"{acct}/diabstag"), role_put(f"{acct}/diabstag"),
        # the deploying principal, for the blob test
        role_list(f"{acct}/diabstag"), role_def(f"{acct}/diabstag"), role_put(f"{acct}/diabstag"),
        f"GET {site}", f"PUT {site}",  # with its settings, the identity and the ACR flags, on the base image
        f"GET {site}/config/slotConfigNames", f"PUT {site}/config/slotConfigNames",
        f"GET {site}/slots/staging", f"PUT {site}/slots/staging",
        f"GET {site}/slots/staging/config/web", f"PATCH {site}/slots/staging/config/web",  # only now the image
        # then the deployment's id (after the image: a container answering with it runs it), and a trigger sync
        f"POST {site}/slots/staging/config/appsettings/list", f"PUT {site}/slots/staging/config/appsettings",
        f"POST {site}/slots/staging/syncfunctiontriggers",
        f"GET {site}/slots/staging", f"GET {site}/slots/staging/functions",  # readiness
        f"POST {site}/slotsswap", "GET /fake-operations/.*",
        f"GET {site}/config/web",  # production runs the image now
    ]
    sent = [f"{m} {p}" for m, p in (r.short() for r in arm.arm_requests())]
    assert len(sent) == len(expected), "\n".join(sent)
    for got, pattern in zip(sent, expected, strict=True):
        assert re.fullmatch(pattern, got), f"{got!r} does not match {pattern!r}"
    assert result.deployment.state is ServiceState.HEALTHY and result.deployment.swapped
    # URLs are the host names ARM gave the sites, not built from the names.
    assert result.deployment.app_url == f"https://{arm.get(SITE)['properties']['defaultHostName']}"
    assert result.deployment.slot_url == f"https://{arm.get(SITE + '/slots/staging')['properties']['defaultHostName']}"

    bodies = {(r.method, r.path): r.body for r in arm.arm_requests()}
    plan_body = bodies[("PUT", f"{RG}/providers/Microsoft.Web/serverfarms/diab-app-plan")]
    assert plan_body["properties"]["reserved"] is True and plan_body["sku"] == {"name": "EP1", "tier": "ElasticPremium"}
    identity = arm.get(f"{RG}{uami.removeprefix('/resourceGroups/diab-rg')}")["properties"]
    prod = bodies[("PUT", SITE)]
    slot = bodies[("PUT", f"{SITE}/slots/staging")]
    for body in (prod, slot):
        assert body["kind"] == "functionapp,linux,container"
        assert body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {f"{RG}{uami[23:]}": {}}}
        config = body["properties"]["siteConfig"]
        assert config["acrUseManagedIdentityCreds"] is True
        assert config["acrUserManagedIdentityID"] == identity["clientId"]
        assert config["linuxFxVersion"].startswith("DOCKER|mcr.microsoft.com/azure-functions/")  # not yet the image
        assert body["properties"]["serverFarmId"].endswith("/serverfarms/diab-app-plan")
        assert body["tags"] == {"modelfunc-app": "diab-app"}
        # The settings the host needs at its first start are in the create request itself.
        sent_settings = {pair["name"]: pair["value"] for pair in config["appSettings"]}
        assert sent_settings["AzureWebJobsStorage__accountName"] == "diabhost"
        assert sent_settings["AzureWebJobsStorage__credential"] == "managedidentity"
        assert sent_settings["AzureWebJobsStorage__clientId"] == identity["clientId"]
        assert sent_settings["TriggerConnectionString__clientId"] == identity["clientId"]
    image_patch = bodies[("PATCH", f"{SITE}/slots/staging/config/web")]["properties"]
    assert image_patch == {"linuxFxVersion": f"DOCKER|{IMAGE_A}", "acrUseManagedIdentityCreds": True,
                           "acrUserManagedIdentityID": identity["clientId"]}
    assert arm.get(f"{SITE}/config/web")["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE_A}"

    # Every role is granted to the one identity, by the id Azure defines for its name, before the first site.
    role_puts = [r for r in arm.arm_requests() if r.method == "PUT" and "/roleAssignments/" in r.path]
    first_site = next(i for i, r in enumerate(arm.arm_requests()) if r.method == "PUT" and r.path == SITE)
    assert all(arm.arm_requests().index(r) < first_site for r in role_puts)
    granted = {(r.path.split("/providers/Microsoft.Authorization/")[0].rsplit("/", 1)[-1],
                r.body["properties"]["roleDefinitionId"].rsplit("/", 1)[-1]) for r in role_puts
               if r.body["properties"]["principalId"] == identity["principalId"]}
    assert all(r.body["properties"]["principalType"] == "ServicePrincipal" for r in role_puts)
    by_id = {v: k for k, v in BUILTIN_ROLES.items()}
    granted_names = {(where, by_id[role]) for where, role in granted}
    assert granted_names == {("myreg", "AcrPull")} | {
        ("diabhost", r) for r in HOST_STORAGE_BLOB_TRIGGER_ROLES | HOST_STORAGE_ROLES | HOST_STORAGE_DIAGNOSTICS_ROLES
    } | {(a, r) for a in ("diabtrig", "diabstag") for r in BLOB_TRIGGER_CONNECTION_ROLES}
    # Never the registry's admin password: no credential listing on the registry, no registry user or password.
    assert not any("listCredentials" in r.path for r in arm.requests)
    for path in (f"{SITE}/config/appsettings", f"{SITE}/slots/staging/config/appsettings"):
        values = arm.get(path)["properties"]
        assert {k for k in values if k.startswith("DOCKER_REGISTRY")} == {"DOCKER_REGISTRY_SERVER_URL"}
        assert values["DOCKER_REGISTRY_SERVER_URL"] == "https://myreg.azurecr.io"
        assert values["TriggerConnectionString__blobServiceUri"].endswith(".blob.core.windows.net")
    # Each slot listens to its own trigger storage (sticky), so the slot never consumes production's blobs.
    assert arm.get(f"{SITE}/config/appsettings")["properties"]["TriggerConnectionString__blobServiceUri"] == \
        "https://diabtrig.blob.core.windows.net"
    assert arm.get(f"{SITE}/slots/staging/config/appsettings")["properties"][
        "TriggerConnectionString__blobServiceUri"] == "https://diabstag.blob.core.windows.net"
    deployer = [r for r in arm.arm_requests() if r.method == "PUT" and (r.body or {}).get("properties", {}).get(
        "principalId") == DEPLOYER_OID]
    assert len(deployer) == 1
    assert deployer[0].path.startswith(f"{RG}/providers/Microsoft.Storage/storageAccounts/diabstag")
    assert by_id[deployer[0].body["properties"]["roleDefinitionId"].rsplit("/", 1)[-1]] == \
        "Storage Blob Data Contributor"
    assert all(tag == {"modelfunc-app": "diab-app"} for tag in (
        arm.get(f"{RG}/providers/Microsoft.Storage/storageAccounts/{a}")["tags"] for a in ("diabhost", "diabtrig")))


def test_deploy_test_and_swap_as_separate_steps(arm: FakeArm, project) -> None:  # noqa: ANN001
    """What the action does across steps: deploy_to_slot, hand the summary on (JSON), swap in a later step."""
    from modelfunc.azure import SlotDeployment, deploy_to_slot, swap

    deployment = deploy_to_slot(project, IMAGE_A, options(), credential=FakeCredential(), settings=settings(arm),
                                sleep=lambda s: None)
    assert deployment.state is ServiceState.HEALTHY and not any(r.path.endswith("slotsswap") for r in arm.requests)
    carried = SlotDeployment.from_summary(json.loads(json.dumps(deployment.summary())))
    assert carried.summary() == deployment.summary()
    swapped = swap(carried, credential=FakeCredential(), settings=settings(arm))
    assert swapped.swapped and arm.get(f"{SITE}/config/web")["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE_A}"


def test_second_deploy_with_nothing_changed_sends_no_mutating_request(arm: FakeArm, project) -> None:  # noqa: ANN001
    run_deploy(arm, project)
    arm.requests.clear()
    result = run_deploy(arm, project)
    assert arm.mutating() == [], [r.short() for r in arm.mutating()]
    assert arm.arm_requests(), "the second deploy must still read the state"
    assert result.deployment.changed is False and not result.plan.mutating
    assert "No changes" in result.plan.render()


def test_changed_image_updates_only_the_container_then_swaps(arm: FakeArm, project) -> None:  # noqa: ANN001
    run_deploy(arm, project)
    arm.requests.clear()
    result = run_deploy(arm, project, IMAGE_B)
    mutating = [r.short() for r in arm.mutating()]
    site = "/resourceGroups/diab-rg/providers/Microsoft.Web/sites/diab-app"
    assert mutating == [("PATCH", f"{site}/slots/staging/config/web"),
                        ("PUT", f"{site}/slots/staging/config/appsettings"),  # the deployment id, after the image
                        ("POST", f"{site}/slots/staging/syncfunctiontriggers"), ("POST", f"{site}/slotsswap")]
    assert arm.mutating()[1].body["properties"]["MODELFUNC_DEPLOYMENT_ID"] == "sha256:" + "b" * 64
    patch = arm.mutating()[0].body
    client_id = arm.get(f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/diab-app-id")[
        "properties"]["clientId"]
    assert patch["properties"] == {"linuxFxVersion": f"DOCKER|{IMAGE_B}", "acrUseManagedIdentityCreds": True,
                                   "acrUserManagedIdentityID": client_id}
    assert arm.get(f"{SITE}/config/web")["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE_B}"
    # The previous image is now on the slot, ready for a swap back.
    assert arm.get(f"{SITE}/slots/staging/config/web")["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE_A}"
    assert result.deployment.swapped


def test_a_setting_added_by_hand_survives_a_redeploy(arm: FakeArm, project) -> None:  # noqa: ANN001
    run_deploy(arm, project)
    prod = arm.get(f"{SITE}/config/appsettings")["properties"]
    prod["MY_FEATURE_FLAG"] = "on"
    prod["FUNCTIONS_EXTENSION_VERSION"] = "~3"  # drifted: modelfunc's own setting is put back
    arm.requests.clear()
    run_deploy(arm, project, IMAGE_B)
    writes = {r.path: r.body["properties"] for r in arm.mutating() if r.path.endswith("/config/appsettings")}
    assert set(writes) == {f"{SITE}/config/appsettings", f"{SITE}/slots/staging/config/appsettings"}
    prod_written = writes[f"{SITE}/config/appsettings"]
    assert prod_written["MY_FEATURE_FLAG"] == "on" and prod_written["FUNCTIONS_EXTENSION_VERSION"] == "~4"
    # Settings swap with the slot: the slot carries the hand-made one too, so production keeps it after the swap.
    assert writes[f"{SITE}/slots/staging/config/appsettings"]["MY_FEATURE_FLAG"] == "on"
    assert any(r.path.endswith("slotsswap") for r in arm.mutating())
    assert arm.get(f"{SITE}/config/appsettings")["properties"]["MY_FEATURE_FLAG"] == "on"
    assert arm.get(f"{SITE}/config/appsettings")["properties"]["TriggerConnectionString__blobServiceUri"] == \
        "https://diabtrig.blob.core.windows.net"


# ------------------------------------------------------------------------------------------ the test gates the swap


def test_failing_blob_test_sends_no_swap_and_production_keeps_its_image(arm: FakeArm, project) -> None:  # noqa: ANN001
    run_deploy(arm, project)
    arm.requests.clear()
    result = run_deploy(arm, project, IMAGE_B, test=failed)
    assert not result.passed
    assert not any(r.path.endswith("slotsswap") for r in arm.requests)
    assert arm.get(f"{SITE}/config/web")["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE_A}"


def test_slot_that_never_lists_its_function_is_unhealthy_and_not_swapped(arm: FakeArm, project) -> None:  # noqa: ANN001
    broken = "myreg.azurecr.io/diabetes@sha256:" + "c" * 64  # the fake host lists no function for this image
    clock = iter(range(0, 10_000, 5))
    with pytest.raises(DeployError) as e:
        deploy(project, broken, options(timeout=30), credential=FakeCredential(), settings=settings(arm),
               blob_test=passed, sleep=lambda s: None, clock=lambda: float(next(clock)))
    assert "Unhealthy" in str(e.value) and "score_blob" in str(e.value)
    assert e.value.deployment.state is ServiceState.UNHEALTHY  # type: ignore[attr-defined]
    assert not any(r.path.endswith("slotsswap") for r in arm.requests)
    # Restarted once on the way (a pull refused while AcrPull propagated is not retried by itself), not more.
    assert arm.restarts == [f"{SITE}/slots/staging".lower()]


def test_a_site_from_an_earlier_modelfunc_gets_the_shared_identity_and_keeps_its_own(arm: FakeArm, project) -> None:  # noqa: ANN001
    run_deploy(arm, project)
    for path in (SITE, f"{SITE}/slots/staging"):  # as modelfunc 0.1 left them: a system-assigned identity each
        arm.store[path.lower()]["identity"] = {"type": "SystemAssigned", "principalId": str(uuid.uuid4())}
    arm.requests.clear()
    run_deploy(arm, project)
    patches = {r.path: r.body for r in arm.mutating()
               if r.method == "PATCH" and r.path in (SITE, SITE + "/slots/staging")}
    uami = f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/diab-app-id"
    assert patches == {p: {"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uami: {}}}}
                       for p in (SITE, SITE + "/slots/staging")}


def azurite_repo(example):  # noqa: ANN001, ANN201
    """The blob example as app diab-app, on containers of its own (the Azurite account is shared by the suite)."""
    repo = example("diabetes-blob")
    own_containers(repo, name="diab-app")
    return repo


@pytest.mark.azurite
def test_blob_test_on_real_azurite_gates_the_swap(arm: FakeArm, example, azurite, serve) -> None:  # noqa: ANN001
    """The slot's "trigger storage" is a real Azurite with the local host serving the app: a real pass swaps,
    a real mismatch (expected output changed) does not."""
    repo = azurite_repo(example)
    project = load_project(repo)
    serve(repo, connection_string=azurite.connection_string)

    def real_test(p, deployment):  # noqa: ANN001, ANN202
        return round_trip(p, connection_string=azurite.connection_string, timeout=30)

    first = run_deploy(arm, project, IMAGE_A, test=real_test)
    assert first.report.passed, first.report.render()
    assert any(r.path.endswith("slotsswap") for r in arm.requests)

    (repo / "samples" / "expected.json").write_text(json.dumps([1.0, 2.0]))
    project = load_project(repo)
    arm.requests.clear()
    second = run_deploy(arm, project, IMAGE_B, test=real_test)
    assert not second.report.passed and second.report.mismatches
    assert not any(r.path.endswith("slotsswap") for r in arm.requests)
    assert arm.get(f"{SITE}/config/web")["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE_A}"


def test_an_answer_from_the_previous_image_is_refused_and_never_swapped(arm: FakeArm, example, azurite,
                                                                       serve) -> None:  # noqa: ANN001
    """Issue 11, defect 4: right after a redeploy the slot's old container may still answer, with the right
    numbers. The local host plays that container (it runs image A's deployment); the test of image B must not
    accept its answer, so B is never swapped in untested."""
    repo = azurite_repo(example)
    project = load_project(repo)
    serve(repo, connection_string=azurite.connection_string,
          extra=("--setting", f"MODELFUNC_DEPLOYMENT_ID={deployment_id(IMAGE_A)}"))

    def real_test(p, deployment):  # noqa: ANN001, ANN202
        return round_trip(p, connection_string=azurite.connection_string, timeout=8,
                          deployment=deployment_id(deployment.image))

    first = run_deploy(arm, project, IMAGE_A, test=real_test)
    assert first.report.passed, first.report.render()
    assert first.report.deployment == "sha256:" + "a" * 64

    arm.requests.clear()
    second = run_deploy(arm, project, IMAGE_B, test=real_test)
    assert not second.report.passed and not second.report.mismatches  # the numbers were right ...
    assert f"came from {deployment_id(IMAGE_A)}, not from deployment {deployment_id(IMAGE_B)}" in \
        second.report.error  # ... but from the wrong image
    assert not any(r.path.endswith("slotsswap") for r in arm.requests)
    assert arm.get(f"{SITE}/config/web")["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE_A}"


def test_the_function_list_is_synced_so_a_broken_image_is_not_read_as_healthy(arm: FakeArm, project) -> None:  # noqa: ANN001
    """ARM's function list is a cache the host fills: after an image change it still names the old image's
    functions. The deploy asks for a sync, so an image that lists nothing is found unhealthy."""
    run_deploy(arm, project, no_swap=True)  # the slot runs image A, which lists score_blob
    broken = "myreg.azurecr.io/diabetes@sha256:" + "c" * 64  # the fake host lists no function for this image
    slot = f"{SITE}/slots/staging".lower()
    arm.store[f"{slot}/config/web"]["properties"]["linuxFxVersion"] = f"DOCKER|{broken}"
    assert [f["properties"]["name"] for f in arm._functions(slot)] == ["score_blob"]  # stale: the model bites
    arm.store[f"{slot}/config/web"]["properties"]["linuxFxVersion"] = f"DOCKER|{IMAGE_A}"
    clock = iter(range(0, 10_000, 5))
    with pytest.raises(DeployError, match="Unhealthy"):
        deploy(project, broken, options(timeout=30), credential=FakeCredential(), settings=settings(arm),
               blob_test=passed, sleep=lambda s: None, clock=lambda: float(next(clock)))
    assert slot in arm.syncs


def test_no_swap_leaves_production_alone(arm: FakeArm, project) -> None:  # noqa: ANN001
    result = run_deploy(arm, project, no_swap=True, slot_name="canary")
    assert not any(r.path.endswith("slotsswap") for r in arm.requests)
    assert arm.get(f"{SITE}/slots/canary/config/web")["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE_A}"
    assert "mcr.microsoft.com" in arm.get(f"{SITE}/config/web")["properties"]["linuxFxVersion"]
    assert result.deployment.slot_url == "https://diab-app-canary.azurewebsites.net"


# ------------------------------------------------------------------------------------------ dry run


def test_dry_run_sends_no_mutating_request_and_prints_the_plan(arm: FakeArm, project, capsys) -> None:  # noqa: ANN001
    result = plan(project, IMAGE_A, options(), credential=FakeCredential(), settings=settings(arm))
    assert arm.mutating() == []
    assert all(r.method == "GET" for r in arm.arm_requests())
    text = result.render()
    print(text)
    out = capsys.readouterr().out
    assert "+ create    storage account diabhost" in out
    assert "+ create    function app diab-app slot staging" in out
    assert "+ TriggerConnectionString__blobServiceUri = 'https://diabstag.blob.core.windows.net'" in out

    run_deploy(arm, project)  # now it exists: the plan for another image is one container update and the swap
    arm.requests.clear()
    again = plan(project, IMAGE_B, options(), credential=FakeCredential(), settings=settings(arm))
    assert arm.mutating() == []
    changed = [c.resource for c in again.mutating]
    assert changed == ["container of diab-app slot staging", "app settings of diab-app slot staging",
                       "function triggers of diab-app slot staging"]
    assert "= unchanged plan diab-app-plan" in again.render()


def test_dry_run_masks_secret_settings(arm: FakeArm, example) -> None:  # noqa: ANN001
    repo = example("diabetes-blob")
    (repo / "modelfunc.yaml").write_text((repo / "modelfunc.yaml").read_text() + "cache: redis\n")
    project = load_project(repo)
    run_deploy(arm, project)
    arm.get(f"{SITE}/config/appsettings")["properties"]["PARTNER_API_KEY"] = HAND_SECRET
    result = plan(project, IMAGE_A, options(redis_connection_string=REDIS_SECRET), credential=FakeCredential(),
                  settings=settings(arm))
    text = result.render()
    assert "+ RedisConnectionString = ***" in text
    assert "PARTNER_API_KEY = *** (not modelfunc's; kept)" in text
    assert REDIS_SECRET not in text and HAND_SECRET not in text and "redis-SECRET" not in json.dumps(result.to_dict())


# ------------------------------------------------------------------------------------------ retries and auth


def test_429_and_503_are_retried_with_backoff_then_succeed(arm: FakeArm, project) -> None:  # noqa: ANN001
    arm.fail("GET", "/resourcegroups/diab-rg", 429, times=2, **{"Retry-After": "7"})
    arm.fail("PUT", "/storageaccounts/diabhost", 503, times=3)
    result = run_deploy(arm, project)
    assert result.deployment.swapped
    rg_gets = [r for r in arm.requests if r.short() == ("GET", "/resourcegroups/diab-rg")]
    assert len(rg_gets) == 3  # two 429s, then the answer
    puts = [r for r in arm.requests if r.method == "PUT" and r.path.endswith("/storageAccounts/diabhost")]
    assert len(puts) == 4  # three 503s, then created
    # Retry-After is honoured; otherwise exponential backoff (factor 0.5: 0 s, then 1 s, 2 s) — through the
    # transport's sleep, which the test records instead of sleeping.
    assert arm.sleeps.count(7) == 2
    assert [s for s in arm.sleeps if s not in (0, 7)][:2] == [1.0, 2.0]


def test_retries_exhausted_end_with_a_clear_error(arm: FakeArm, project) -> None:  # noqa: ANN001
    arm.fail("PUT", "/serverfarms/diab-app-plan", 503, times=20)
    with pytest.raises(DeployError) as e:
        deploy(project, IMAGE_A, options(), credential=FakeCredential(),
               settings=settings(arm, retry_total=2), blob_test=passed, sleep=lambda s: None)
    assert "create plan diab-app-plan failed: 503" in str(e.value)
    assert not any(r.path.endswith("/sites/diab-app") and r.method == "PUT" for r in arm.requests)


def test_credential_that_raises_ends_with_the_hint_before_any_request(arm: FakeArm, project) -> None:  # noqa: ANN001
    credential = FakeCredential(ClientAuthenticationError("AADSTS700016: application not found"))
    with pytest.raises(CredentialError) as e:
        deploy(project, IMAGE_A, options(), credential=credential, settings=settings(arm), blob_test=passed)
    assert e.value.hint == SETUP_HINT and "AADSTS700016" in str(e.value)
    assert "id-token: write" in str(e.value) and "az login" in str(e.value)
    assert arm.arm_requests() == []


def test_arm_401_ends_with_the_credential_hint(arm: FakeArm, project) -> None:  # noqa: ANN001
    arm.fail("GET", "/resourcegroups/diab-rg", 401)
    with pytest.raises(CredentialError) as e:
        run_deploy(arm, project)
    assert "refused the credential" in str(e.value) and e.value.hint == SETUP_HINT
    assert arm.mutating() == []


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("kw", "image", "field"), [
    ({}, "myreg.azurecr.io/diabetes:latest", "image"),
    ({"subscription_id": "not-a-guid"}, IMAGE_A, "subscription-id"),
    ({"storage_prefix": "Bad_Prefix"}, IMAGE_A, "storage-prefix"),
    ({"slot_name": "production"}, IMAGE_A, "slot-name"),
    ({"sku": "Y1"}, IMAGE_A, "sku"),
    ({"app_name": "-bad-"}, IMAGE_A, "app-name"),
    ({}, "docker.io/library/diabetes@sha256:" + "a" * 64, "image"),
    ({"registry": "otherreg"}, IMAGE_A, "registry"),
])
def test_bad_options_name_the_option_and_change_nothing(arm: FakeArm, project, kw, image, field) -> None:  # noqa: ANN001
    with pytest.raises(OptionError) as e:
        deploy(project, image, options(**kw), credential=FakeCredential(), settings=settings(arm), blob_test=passed)
    assert e.value.field == field and e.value.exit_code != 0
    assert arm.mutating() == []


def test_missing_location_for_a_new_group_is_an_error_before_any_write(arm: FakeArm, project) -> None:  # noqa: ANN001
    with pytest.raises(OptionError) as e:
        run_deploy(arm, project, location=None)
    assert e.value.field == "location" and "diab-rg" in str(e.value)
    assert arm.mutating() == []


def test_registry_missing_from_the_subscription_is_named(arm: FakeArm, project) -> None:  # noqa: ANN001
    image = "elsewhere.azurecr.io/diabetes@sha256:" + "a" * 64
    with pytest.raises(OptionError) as e:
        run_deploy(arm, project, image)
    assert e.value.field == "registry" and "elsewhere.azurecr.io" in str(e.value)
    assert arm.mutating() == []


# ------------------------------------------------------------------------------------------ secrets


def test_no_secret_reaches_any_output(arm: FakeArm, example, capfd, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="azure")
    repo = example("diabetes-blob")
    (repo / "modelfunc.yaml").write_text((repo / "modelfunc.yaml").read_text() + "cache: redis\n")
    project = load_project(repo)
    arm.add(f"/subscriptions/{SUB}/resourceGroups/diab-rg", {"location": "westeurope"})
    arm.add(SITE, {"location": "westeurope", "kind": "functionapp,linux,container",
                   "identity": {"type": "SystemAssigned"}, "properties": {}})
    arm.add(f"{SITE}/config/appsettings", {"properties": {
        "AzureWebJobsStorage": f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={STORAGE_KEY}",
        "PARTNER_API_KEY": HAND_SECRET}})
    result = deploy(project, IMAGE_A, options(redis_connection_string=REDIS_SECRET), credential=FakeCredential(),
                    settings=settings(arm), blob_test=passed, sleep=lambda s: None, progress=print)
    print(result.plan.render())
    print(json.dumps(result.plan.to_dict()))
    print(plan(project, IMAGE_B, options(redis_connection_string=REDIS_SECRET), credential=FakeCredential(),
               settings=settings(arm)).render())
    out, err = capfd.readouterr()
    assert caplog.records, "logging at INFO must have captured the SDK's request log"
    assert "management.azure.com" in caplog.text
    # The secret did reach Azure (it is the app setting's value) ...
    assert arm.get(f"{SITE}/config/appsettings")["properties"]["RedisConnectionString"] == REDIS_SECRET
    # ... and nowhere else.
    for secret in (TOKEN, "tok-SECRET", REDIS_SECRET, "redis-SECRET", STORAGE_KEY, HAND_SECRET):
        for where, text in (("stdout", out), ("stderr", err), ("log", caplog.text)):
            assert secret not in text, f"{secret[:12]}... appeared in {where}"


# ------------------------------------------------------------------------------------------ destroy


def test_destroy_removes_what_was_tagged_and_is_fine_when_gone(arm: FakeArm, project) -> None:  # noqa: ANN001
    run_deploy(arm, project)
    other = f"{RG}/providers/Microsoft.Storage/storageAccounts/usersown"
    arm.add(other, {"location": "westeurope", "tags": {"owner": "someone"}})
    acr_assignments = [k for k in arm.store if k.startswith(REGISTRY_ID.lower() + "/providers/microsoft.authorization")]
    assert len(acr_assignments) == 1  # one identity for production and the slot
    arm.requests.clear()
    result = destroy("diab-app", "diab-rg", subscription_id=SUB, credential=FakeCredential(), settings=settings(arm))
    deletes = [r.short()[1] for r in arm.requests if r.method == "DELETE"]
    assert any(p.endswith("/sites/diab-app") for p in deletes)
    assert any(p.endswith("/serverfarms/diab-app-plan") for p in deletes)
    assert sum("/storageAccounts/diab" in p and "roleAssignments" not in p for p in deletes) == 3
    assert arm.get(SITE) is None and arm.get(other) is not None  # the user's own account is not touched
    assert not [k for k in arm.store if k.startswith(REGISTRY_ID.lower() + "/providers/microsoft.authorization")]
    assert arm.get(REGISTRY_ID) is not None
    assert arm.get(f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/diab-app-id") is None
    # The group existed before? No: modelfunc created it, but it still holds the user's account, so it stays.
    assert arm.get(RG) is not None and any("usersown" in n for n in result.notes)
    arm.requests.clear()
    again = destroy("diab-app", "diab-rg", subscription_id=SUB, credential=FakeCredential(), settings=settings(arm))
    assert [r for r in arm.requests if r.method == "DELETE"] == []
    assert "already removed" in again.render()
    gone = destroy("diab-app", "no-such-rg", subscription_id=SUB, credential=FakeCredential(), settings=settings(arm))
    assert "does not exist" in gone.render()


def test_destroy_removes_a_group_modelfunc_created_once_empty(arm: FakeArm, project) -> None:  # noqa: ANN001
    run_deploy(arm, project)
    destroy("diab-app", "diab-rg", subscription_id=SUB, credential=FakeCredential(), settings=settings(arm))
    assert arm.get(RG) is None
    assert [r.short()[1] for r in arm.requests if r.method == "DELETE"][-1] == "/resourcegroups/diab-rg"


def test_destroy_dry_run_deletes_nothing(arm: FakeArm, project) -> None:  # noqa: ANN001
    run_deploy(arm, project)
    arm.requests.clear()
    result = destroy("diab-app", "diab-rg", subscription_id=SUB, credential=FakeCredential(), settings=settings(arm),
                     dry_run=True)
    assert arm.mutating() == []
    assert "- delete    function app diab-app (and its slots)" in result.render()

