"""The Azure facts modelfunc relies on, checked against Microsoft's references (tests/support/azure_reference.py, each
fact beside its page), and the fake's enforcement of them shown to bite: a wrong belief fails here, not on a
user's first real run."""

from __future__ import annotations

import re

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from modelfunc.azure import DeployOptions, PipelineSettings, deploy, facts
from modelfunc.azure.credentials import principal_type
from modelfunc.azure.options import SKUS, resolve_names
from modelfunc.config import load_project
from modelfunc.errors import OptionError
from modelfunc.roundtrip import TestReport as Report
from modelfunc.triggers import FULLY_QUALIFIED_NAMESPACE_SUFFIX, BlobTrigger, HttpTrigger
from support.azure_reference import (
    BLOB_TRIGGER_CONNECTION_ROLES,
    BUILTIN_ROLES,
    HOST_STORAGE_BLOB_TRIGGER_ROLES,
    HOST_STORAGE_DIAGNOSTICS_ROLES,
    HOST_STORAGE_ROLES,
    SERVICE_BUS_NAMESPACE_SETTING,
    SERVICE_BUS_OUTPUT_ROLE,
    SERVICE_BUS_TRIGGER_ROLE,
    TIERS_WITHOUT_SLOTS,
    WRONG_BLOB_DATA_OWNER,
)
from support.azurefake import REGISTRY_ID, SUB, FakeArm, FakeCredential
from support.core import ROOT

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
IMAGE = "myreg.azurecr.io/diabetes@sha256:" + "a" * 64
RG = f"/subscriptions/{SUB}/resourceGroups/diab-rg"


pytestmark = pytest.mark.arm(images={IMAGE: ["score_blob"]})  # `arm`: support/plugin.py


def passed(project, deployment) -> Report:  # noqa: ANN001
    return Report(True, "blob", "injected", "in")


def settings(arm: FakeArm) -> PipelineSettings:
    return PipelineSettings(transport=arm.transport(), polling_interval=0, retry_backoff_factor=0)


def options(**kw: object) -> DeployOptions:
    base: dict[str, object] = {"subscription_id": SUB, "app_name": "diab-app", "resource_group": "diab-rg",
                               "location": "westeurope", "storage_prefix": "diab", "timeout": 60}
    return DeployOptions(**{**base, **kw})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ roles


def test_no_role_id_is_typed_into_the_product() -> None:
    """Roles are resolved by name; a role GUID in generator/, scripts/ or action.yml could only be a guess."""
    role_ids = set(BUILTIN_ROLES.values()) | {WRONG_BLOB_DATA_OWNER}
    for path in [*ROOT.joinpath("generator").rglob("*.py"), *ROOT.joinpath("scripts").rglob("*.py"),
                 ROOT / "action.yml"]:
        found = {m.lower() for m in GUID.findall(path.read_text())}
        assert not found & role_ids, f"{path.relative_to(ROOT)} names a role by id: {found & role_ids}"


def test_every_role_the_deploy_names_is_a_builtin_role() -> None:
    named = {v for k, v in vars(facts).items() if k.isupper() and isinstance(v, str) and v in BUILTIN_ROLES}
    named |= set(facts.host_storage_roles(BlobTrigger(type="blob"))) | set(facts.BLOB_TRIGGER_ROLES)
    assert named >= {"AcrPull", "Storage Blob Data Owner", "Storage Blob Data Contributor"}
    assert named <= set(BUILTIN_ROLES)


def test_service_bus_roles_are_the_ones_the_functions_docs_list() -> None:
    assert set(facts.BUS_APP_ROLES) == {SERVICE_BUS_TRIGGER_ROLE, SERVICE_BUS_OUTPUT_ROLE}
    assert set(facts.BUS_APP_ROLES) <= set(BUILTIN_ROLES) and set(facts.BUS_TEST_ROLES) <= set(BUILTIN_ROLES)
    assert facts.identity_connection("ServiceBusConnection", "c") and SERVICE_BUS_NAMESPACE_SETTING.format(
        connection="ServiceBusConnection") == "ServiceBusConnection" + FULLY_QUALIFIED_NAMESPACE_SUFFIX


def test_the_kudu_token_audience_is_the_one_the_azure_cli_asks_for() -> None:
    """Microsoft's own CLI (azure-cli, in .venv-az) authenticates OneDeploy with a token for its cloud's
    app_service_resource_id: read its table live and compare."""
    import json
    import subprocess

    from modelfunc.azure import clouds

    az_python = ROOT / ".venv-az" / "bin" / "python"
    if not az_python.exists():
        pytest.skip("azure-cli is not installed (`make .venv-az/bin/az`); CI installs it")
    code = ("import json; from azure.cli.core.cloud import HARD_CODED_CLOUD_LIST as L; print(json.dumps("
            "{c.name: c.endpoints.__dict__.get('app_service_resource_id') for c in L}))")
    az = json.loads(subprocess.run([str(az_python), "-c", code], capture_output=True, text=True, check=True).stdout)
    for name in clouds.NAMES:
        assert clouds.APP_SERVICE_RESOURCES[name] == az[name], name
    assert clouds.public().kudu_scope == "https://appservice.azure.com/.default"


def test_host_storage_roles_are_the_ones_the_functions_docs_list() -> None:
    blob, http = BlobTrigger(type="blob"), HttpTrigger(type="http")
    assert set(facts.host_storage_roles(blob)) == (HOST_STORAGE_BLOB_TRIGGER_ROLES | HOST_STORAGE_ROLES
                                                   | HOST_STORAGE_DIAGNOSTICS_ROLES)
    assert set(facts.host_storage_roles(http)) == HOST_STORAGE_ROLES | HOST_STORAGE_DIAGNOSTICS_ROLES
    assert set(facts.BLOB_TRIGGER_ROLES) == BLOB_TRIGGER_CONNECTION_ROLES


def test_the_fake_refuses_the_role_id_modelfunc_used_to_send(arm: FakeArm) -> None:
    """Azure answers 400 RoleDefinitionDoesNotExist for an id no role has; so does the fake, through the real SDK."""
    auth = AuthorizationManagementClient(FakeCredential(), SUB, **settings(arm).kwargs())
    scope = f"{RG}/providers/Microsoft.Storage/storageAccounts/diabhost"
    params = RoleAssignmentCreateParameters(
        role_definition_id=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                           f"{WRONG_BLOB_DATA_OWNER}", principal_id="p", principal_type="ServicePrincipal")
    with pytest.raises(HttpResponseError) as e:
        auth.role_assignments.create(scope, "00000000-0000-0000-0000-0000000000aa", params)
    assert e.value.status_code == 400 and e.value.error.code == "RoleDefinitionDoesNotExist"
    # ... and resolves the name the way the CLI does, to the id the reference gives.
    found = list(auth.role_definitions.list(scope, filter="roleName eq 'Storage Blob Data Owner'"))
    assert [d.id.rsplit("/", 1)[-1] for d in found] == [BUILTIN_ROLES["Storage Blob Data Owner"]]


def test_a_role_that_cannot_be_resolved_stops_before_any_site(arm: FakeArm, example, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(facts, "ACR_PULL", "AcrPul")  # a typo'd role name: Azure has no such role
    from modelfunc.errors import DeployError

    with pytest.raises(DeployError, match="role 'AcrPul' is not defined"):
        deploy(load_project(example("diabetes-blob")), IMAGE, options(no_swap=True), credential=FakeCredential(),
               settings=settings(arm), sleep=lambda s: None, blob_test=passed)
    assert not any("/Microsoft.Web/sites/" in r.path for r in arm.mutating())


# ----------------------------------------------------------------------------------------- plans, slots


@pytest.mark.parametrize("sku", [s for s, tier in SKUS.items() if tier in TIERS_WITHOUT_SLOTS])
def test_plans_without_slots_are_refused_before_anything_is_sent(example, sku: str) -> None:  # noqa: ANN001
    with pytest.raises(OptionError) as e:
        resolve_names(load_project(example("diabetes-blob")), options(sku=sku))
    assert e.value.field == "sku" and "no deployment slots" in e.value.message


def test_the_fake_refuses_a_slot_on_a_basic_plan(arm: FakeArm) -> None:
    plan = f"{RG}/providers/Microsoft.Web/serverfarms/p"
    arm.add(plan, {"location": "westeurope", "sku": {"name": "B1", "tier": "Basic"}})
    arm.add(f"{RG}/providers/Microsoft.Web/sites/a", {"location": "westeurope", "properties": {"serverFarmId": plan}})
    status, _, body = arm.handle("PUT", f"https://management.azure.com{RG}/providers/Microsoft.Web/sites/a/slots/s",
                                 b'{"location": "westeurope"}')
    assert status == 409 and "slots" in body["error"]["message"]


def test_the_fake_refuses_ftps_state_on_flex(arm: FakeArm) -> None:
    plan = f"{RG}/providers/Microsoft.Web/serverfarms/p"
    arm.add(plan, {"location": "westeurope", "sku": {"name": "FC1", "tier": "FlexConsumption"}})
    body = b'{"location": "w", "properties": {"serverFarmId": "%s", "siteConfig": {"ftpsState": "Disabled"}}}' % (
        plan.encode())
    status, _, _ = arm.handle("PUT", f"https://management.azure.com{RG}/providers/Microsoft.Web/sites/f", body)
    assert status == 400


# ------------------------------------------------------------------------------------------------ host ids


def test_long_app_names_get_a_sticky_host_id_per_slot(arm: FakeArm, example) -> None:  # noqa: ANN001
    app = "diabetes-scoring-for-the-north-region"  # 37 characters: production and staging would share an id
    assert facts.host_ids_collide(app, "staging") and not facts.host_ids_collide("diab-app", "staging")
    deploy(load_project(example("diabetes-blob")), IMAGE, options(app_name=app, resource_group="diab-rg"),
           credential=FakeCredential(), settings=settings(arm), sleep=lambda s: None, blob_test=passed)
    site = f"{RG}/providers/Microsoft.Web/sites/{app}"
    prod = arm.get(f"{site}/config/appsettings")["properties"][facts.HOST_ID_SETTING]
    slot = arm.get(f"{site}/slots/staging/config/appsettings")["properties"][facts.HOST_ID_SETTING]
    assert prod != slot  # after the swap too: the setting is sticky
    for host_id in (prod, slot):
        assert len(host_id) <= 32 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", host_id)
    assert facts.HOST_ID_SETTING in arm.get(f"{site}/config/slotconfignames")["properties"]["appSettingNames"]


def test_short_app_names_keep_the_host_id_the_host_derives(arm: FakeArm, example) -> None:  # noqa: ANN001
    deploy(load_project(example("diabetes-blob")), IMAGE, options(), credential=FakeCredential(),
           settings=settings(arm), sleep=lambda s: None, blob_test=passed)
    site = f"{RG}/providers/Microsoft.Web/sites/diab-app"
    assert facts.HOST_ID_SETTING not in arm.get(f"{site}/config/appsettings")["properties"]


# -------------------------------------------------------------------------------------------- principals


@pytest.mark.parametrize(("claims", "expected"), [
    ({"idtyp": "app", "oid": "o", "appid": "a"}, "ServicePrincipal"),
    ({"oid": "o", "appid": "a", "roles": ["x"]}, "ServicePrincipal"),  # app-only token without idtyp
    ({"idtyp": "user", "oid": "o", "upn": "u@contoso.com", "scp": "user_impersonation"}, "User"),
    # A guest (B2B) user: no upn, an appid (the client they signed in with), delegated scopes.
    ({"oid": "o", "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "scp": "user_impersonation",
      "unique_name": "live.com#someone@example.com"}, "User"),
])
def test_the_principal_type_follows_the_token_claims_reference(claims: dict, expected: str) -> None:
    assert principal_type(claims) == expected


# -------------------------------------------------------------------------------------------- test timeouts


@pytest.mark.parametrize(("trigger", "source", "expected"), [
    ("blob", "polling", 600.0),  # the polling trigger: "up to a 10-minute delay" (blob trigger docs)
    ("blob", "EventGrid", 120.0),  # pushed by Event Grid: seconds
    ("http", None, 120.0),
])
def test_the_azure_test_waits_as_long_as_the_trigger_is_documented_to_take(trigger: str, source: str | None,
                                                                          expected: float) -> None:
    made = BlobTrigger(type="blob", source=source) if trigger == "blob" else HttpTrigger(type="http")
    assert facts.azure_test_timeout(made) == expected


def test_the_slot_test_defaults_to_the_triggers_latency(arm: FakeArm, example, monkeypatch) -> None:  # noqa: ANN001
    """deploy → test_slot without --test-timeout: a polling blob trigger is given 600 s, and says so."""
    seen: dict[str, object] = {}

    def fake_round_trip(project, **kw):  # noqa: ANN001, ANN003, ANN202 - records what the real test would get
        seen.update(kw)
        return Report(True, "blob", "recorded", "in")

    monkeypatch.setattr("modelfunc.roundtrip.round_trip", fake_round_trip)
    lines: list[str] = []
    deploy(load_project(example("diabetes-blob")), IMAGE, options(), credential=FakeCredential(),
           settings=settings(arm), sleep=lambda s: None, progress=lines.append)
    assert seen["timeout"] == 600.0 and seen["deployment"] == "sha256:" + "a" * 64
    assert any("waiting up to 600 s" in line for line in lines)


def test_host_storage_is_named_by_account_alone_only_in_global_azure(arm: FakeArm, example) -> None:  # noqa: ANN001
    """functions-reference, "Connecting to host storage with an identity": ``AzureWebJobsStorage__accountName`` is
    "valid only if the account isn't in a sovereign cloud"; elsewhere the three service URIs name it."""
    from modelfunc.azure import clouds

    assert facts.host_storage_settings("acct", "core.windows.net") == {"AzureWebJobsStorage__accountName": "acct"}
    china = clouds.Cloud("AzureChinaCloud", "https://management.chinacloudapi.cn/", "https://login.chinacloudapi.cn",
                         "https://management.chinacloudapi.cn/.default", "core.chinacloudapi.cn", "azurecr.cn")
    cn_image = IMAGE.replace("azurecr.io", "azurecr.cn")
    arm.image_functions[cn_image] = ["score_blob"]
    arm.get(REGISTRY_ID)["properties"]["loginServer"] = "myreg.azurecr.cn"
    options = DeployOptions(subscription_id=SUB, app_name="cn-app", resource_group="cn-rg", location="chinaeast2",
                            storage_prefix="cnapp", timeout=60)
    result = deploy(load_project(example("diabetes-blob")), cn_image, options,
                    credential=FakeCredential(), blob_test=lambda p, d: Report(True, "blob", "t", "i"),
                    settings=PipelineSettings(transport=arm.transport(), polling_interval=0, cloud=china),
                    sleep=lambda s: None)
    assert result.passed
    settings = arm.get(f"/subscriptions/{SUB}/resourceGroups/cn-rg/providers/Microsoft.Web/sites/cn-app/config/"
                       "appsettings")["properties"]
    assert "AzureWebJobsStorage__accountName" not in settings
    assert {settings[f"AzureWebJobsStorage__{s}ServiceUri"] for s in ("blob", "queue", "table")} == {
        f"https://cnapphost.{s}.core.chinacloudapi.cn" for s in ("blob", "queue", "table")}


@pytest.mark.parametrize("field", ["app_name", "resource_group", "slot_name", "storage_prefix", "location"])
def test_a_name_with_a_trailing_newline_is_refused(example, field: str) -> None:  # noqa: ANN001
    """Each name rule matches the whole value: `^...$` with re.match accepted "name\\n" ($ matches before a final
    newline), which Azure would refuse after modelfunc had created the resources before it."""
    good = {"app_name": "diab-app", "resource_group": "diab-rg", "slot_name": "staging", "storage_prefix": "diab",
            "location": "westeurope"}[field]
    project = load_project(example("diabetes-blob"))
    resolve_names(project, options(**{field: good}))  # the name itself is valid
    with pytest.raises(OptionError) as e:
        resolve_names(project, options(**{field: good + "\n"}))
    assert e.value.field is not None
