"""A service-bus-queue app in Azure: its namespaces, queues, roles and settings (against the ARM fake, whose facts
come from tests/support/azure_reference.py), and the test that gates its swap (the real generated app, run by a host
stand-in, with its answer stamps in real Azurite).

No Service Bus emulator exists: the queues of the round-trip tests are in-memory lists, and the function is
called as the host calls it (tests/support/bus_standin.py). What is real: the generated app and its bindings as the
azure-functions library indexes them, the runtime, the stamp blobs in Azure Storage (Azurite), and the test.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from modelfunc.appgen import render
from modelfunc.azure import DeployOptions, PipelineSettings, deploy, destroy, plan
from modelfunc.azure.results import SlotDeployment
from modelfunc.config import load_project
from modelfunc.errors import DeployError, OptionError
from modelfunc.roundtrip import TestReport as Report
from modelfunc.roundtrip.servicebus import NotAuthorizedYet, run_queue_test, stamp_name
from modelfunc.runtime.modelfunc_runtime import MESSAGE_STAMP_CONNECTION, MESSAGE_STAMP_PATH, STAMP_CONTAINER
from support.azure_reference import (
    BUILTIN_ROLES,
    SERVICE_BUS_NAMESPACE_SETTING,
    SERVICE_BUS_OUTPUT_ROLE,
    SERVICE_BUS_TRIGGER_ROLE,
)
from support.azurefake import DEPLOYER_OID, SUB, FakeArm, FakeCredential
from support.core import ROOT, copy_example

BUS_STANDIN = ROOT / "tests" / "support" / "bus_standin.py"
NEW = "sha256:" + "b" * 64
OLD = "sha256:" + "a" * 64


class Host:
    """The generated app in a process of its own (tests/support/bus_standin.py), as a Functions host loads it once
    and then calls it per message; which deployment answers is each message's (``StandIn``), not the process's."""

    def __init__(self, app_dir: Path) -> None:
        self.process = subprocess.Popen([sys.executable, str(BUS_STANDIN), str(app_dir)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=app_dir)
        ready = json.loads(self.process.stdout.readline())
        self.outputs = ready["outputs"]

    def answer(self, body: bytes, message_id: str, deployment: str) -> dict:
        self.process.stdin.write(json.dumps({"message_id": message_id, "body": body.decode(),
                                             "deployment": deployment}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


class StandIn:
    """One container: the app's host answering messages as a deployment."""

    def __init__(self, host: Host, deployment: str) -> None:
        self.host, self.deployment, self.outputs = host, deployment, host.outputs

    def answer(self, body: bytes, message_id: str) -> dict:
        return self.host.answer(body, message_id, self.deployment)


class Slot:
    """A slot's queues (in memory) and whichever containers take its messages, in turn; the host writes each
    blob output (the stamp) to the host storage account (Azurite)."""

    def __init__(self, containers: list[StandIn], storage: BlobServiceClient, input_queue: str) -> None:
        self.containers, self.storage, self.input_queue = containers, storage, input_queue
        self.queues: dict[str, list[bytes]] = {}
        self.sent: list[str] = []
        self.closed = False

    def send(self, queue: str, body: bytes, *, message_id: str, content_type: str) -> None:
        assert queue == self.input_queue and content_type == "application/json"
        self.sent.append(message_id)
        container = self.containers[min(len(self.sent), len(self.containers)) - 1]
        answer = container.answer(body, message_id)
        if answer.get("queue"):
            self.queues.setdefault(answer["queue"]["queue"], []).append(answer["queue"]["body"].encode())
        for path, value in answer.get("blobs", {}).items():
            bucket, name = path.split("/", 1)
            self.storage.get_blob_client(bucket, name).upload_blob(value.encode(), overwrite=True)

    def receive(self, queue: str, *, max_wait: float) -> list[bytes]:
        waiting, self.queues[queue] = self.queues.get(queue, []), []
        if not waiting:
            time.sleep(min(max_wait, 0.05))
        return waiting

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def bus_app(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The Service Bus example, packaged; and a copy whose score.py answers differently (the previous image). The
    tests only read them: packaged once for the module."""
    tmp_path = tmp_path_factory.mktemp("bus-app")
    project = load_project(copy_example("diabetes-servicebus", tmp_path))
    render(project, tmp_path / "new")
    old_repo = copy_example("diabetes-servicebus", tmp_path)
    score = old_repo / "score.py"
    score.write_text(score.read_text() + "\n\n_run = run\n\n\ndef run(data):\n    return {'previous': _run(data)}\n")
    render(load_project(old_repo), tmp_path / "old")
    return project, tmp_path / "new" / "app", tmp_path / "old" / "app"


@pytest.fixture
def stamps(azurite):  # noqa: ANN001, ANN201
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client(STAMP_CONTAINER)
    if not container.exists():
        container.create_container()
    return service, container


@pytest.fixture(scope="module")
def hosts():  # noqa: ANN201
    """Each packaged app's host process, started on first use and kept for the module (loading the app and its
    model is what a host start costs; a message's answer depends only on the app and the message's deployment)."""
    started: dict[Path, Host] = {}

    def host(app_dir: Path) -> Host:
        if app_dir not in started or started[app_dir].process.poll() is not None:
            started[app_dir] = Host(app_dir)
        return started[app_dir]

    yield host
    for h in started.values():
        h.stop()


@pytest.fixture
def containers(hosts):  # noqa: ANN001, ANN201
    """``containers(app_dir, deployment)``: a container of that app answering as that deployment."""
    return lambda app_dir, deployment: StandIn(hosts(app_dir), deployment)


def test_the_generated_app_stamps_each_answer_in_host_storage_by_message_id(bus_app, containers) -> None:  # noqa: ANN001
    _project, app, _old = bus_app
    standin = containers(app, NEW)
    stamp = next(o for o in standin.outputs if o["type"] == "blob")
    # As the azure-functions library indexes the generated app: the host storage connection, the message id.
    assert stamp["connection"] == MESSAGE_STAMP_CONNECTION == "AzureWebJobsStorage"
    assert stamp["path"] == MESSAGE_STAMP_PATH == "modelfunc-stamps/messages/{MessageId}"
    answer = standin.answer(b'{"data": [[0.038, 0.05, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018]]}',
                            "m-1")
    body = answer["queue"]["body"]
    recorded = json.loads(answer["blobs"]["modelfunc-stamps/messages/m-1"])
    assert recorded == {"deployment": NEW, "message_id": "m-1",
                        "answer_sha256": hashlib.sha256(body.encode()).hexdigest()}


def test_no_stamp_without_a_deployment_id(bus_app, containers) -> None:  # noqa: ANN001
    project, app, _old = bus_app
    answer = containers(app, "").answer(project.sample_input.read_bytes(), "m-2")
    assert answer["queue"] is not None and answer["blobs"] == {}


def test_the_queue_test_passes_on_this_deployments_answer(bus_app, containers, stamps) -> None:  # noqa: ANN001
    project, app, _old = bus_app
    service, container = stamps
    slot = Slot([containers(app, NEW)], service, project.trigger.input_queue)
    report = run_queue_test(project, namespace="bus-x-stag.servicebus.windows.net", stamps=container, bus=slot,
                            deployment=NEW, timeout=30)
    assert report.passed, report.render()
    assert report.deployment == NEW and len(slot.sent) == 1 and slot.closed
    assert not container.get_blob_client(stamp_name(slot.sent[0])).exists()  # the stamp is cleaned up
    assert report.target == f"bus-x-stag.servicebus.windows.net/{project.trigger.input_queue}"


def test_an_answer_from_the_previous_image_is_refused_and_the_sample_sent_again(bus_app, containers,  # noqa: ANN001
                                                                                 stamps) -> None:
    project, app, old = bus_app
    service, container = stamps
    slot = Slot([containers(old, OLD), containers(app, NEW)], service, project.trigger.input_queue)
    progress: list[str] = []
    report = run_queue_test(project, namespace="ns", stamps=container, bus=slot, deployment=NEW, timeout=30,
                            progress=progress.append)
    assert report.passed, report.render()
    assert len(slot.sent) == 2 and report.deployment == NEW
    assert "previous" not in json.dumps(report.actual)  # the old image's answer was never judged
    assert any(f"not {NEW}" in line for line in progress)


def test_only_the_previous_image_answering_fails_the_test(bus_app, containers, stamps) -> None:  # noqa: ANN001
    project, _app, old = bus_app
    service, container = stamps
    slot = Slot([containers(old, OLD)], service, project.trigger.input_queue)
    report = run_queue_test(project, namespace="ns", stamps=container, bus=slot, deployment=NEW, timeout=3)
    assert not report.passed
    assert f"not from deployment {NEW}" in report.error and "previous image" in report.error


def test_a_wrong_answer_from_this_deployment_fails_with_the_differences(bus_app, containers, stamps) -> None:  # noqa: ANN001
    project, _app, old = bus_app
    service, container = stamps
    slot = Slot([containers(old, NEW)], service, project.trigger.input_queue)  # the new image answers wrongly
    report = run_queue_test(project, namespace="ns", stamps=container, bus=slot, deployment=NEW, timeout=10)
    assert not report.passed and report.error is None
    assert [m.reason for m in report.mismatches] == ["type dict, expected list"], report.render()


def test_nothing_stamped_names_the_message_and_the_stamp(bus_app, containers, stamps) -> None:  # noqa: ANN001
    project, app, _old = bus_app
    service, container = stamps
    slot = Slot([containers(app, "")], service, project.trigger.input_queue)  # an app that names no deployment
    started = time.perf_counter()
    report = run_queue_test(project, namespace="ns", stamps=container, bus=slot, deployment=NEW, timeout=2)
    assert time.perf_counter() - started < 10
    assert not report.passed
    assert f"{STAMP_CONTAINER}/messages/{slot.sent[0]}" in report.error and "within 2 s" in report.error


class Refusing(Slot):
    """A namespace that refuses the identity's sends ``times`` times (its new role is not applied yet)."""

    def __init__(self, times: int, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.refusals = times

    def send(self, queue: str, body: bytes, *, message_id: str, content_type: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise NotAuthorizedYet("Unauthorized access. 'Send' claim(s) are required to perform this operation.")
        super().send(queue, body, message_id=message_id, content_type=content_type)


def test_a_send_refused_while_the_role_applies_is_tried_again(bus_app, containers, stamps, monkeypatch) -> None:  # noqa: ANN001
    import modelfunc.roundtrip.report as reports

    monkeypatch.setattr(reports, "ROLE_RETRY_FIRST", 0.05)  # the retry both tests share (while_role_applies)
    project, app, _old = bus_app
    service, container = stamps
    slot = Refusing(2, [containers(app, NEW)], service, project.trigger.input_queue)
    progress: list[str] = []
    report = run_queue_test(project, namespace="ns", stamps=container, bus=slot, deployment=NEW, timeout=30,
                            progress=progress.append)
    assert report.passed, report.render()
    assert len(slot.sent) == 1 and sum("does not let this identity send yet" in p for p in progress) == 2


def test_a_send_refused_for_good_names_the_role(bus_app, containers, stamps) -> None:  # noqa: ANN001
    project, app, _old = bus_app
    service, container = stamps
    slot = Refusing(99, [containers(app, NEW)], service, project.trigger.input_queue)
    with pytest.raises(DeployError) as e:
        run_queue_test(project, namespace="ns", stamps=container, bus=slot, deployment=NEW, timeout=30, role_wait=1)
    assert "Azure Service Bus Data Sender" in e.value.hint and "'Send' claim" in e.value.message


# ------------------------------------------------------------------------------- provisioning, against the fake

IMAGE = "myreg.azurecr.io/diabetes@sha256:" + "b" * 64
RG = f"/subscriptions/{SUB}/resourceGroups/sb-rg"
BUS = f"{RG}/providers/Microsoft.ServiceBus/namespaces"
SETTING = SERVICE_BUS_NAMESPACE_SETTING.format(connection="ServiceBusConnection")


pytestmark = [pytest.mark.arm(images={IMAGE: ["score_message"]}),  # `arm`: support/plugin.py
              pytest.mark.xdist_group("test_azure_servicebus")]  # the module's app hosts (`hosts`): one worker


def deploy_bus(arm: FakeArm, project, **kw: object):  # noqa: ANN001, ANN201
    options = DeployOptions(**{"subscription_id": SUB, "app_name": "sb-app", "resource_group": "sb-rg",
                               "location": "westeurope", "storage_prefix": "sbapp", "timeout": 60, **kw})
    settings = PipelineSettings(transport=arm.transport(), polling_interval=0)
    tested = []

    def test(p, deployment) -> Report:  # noqa: ANN001
        tested.append(deployment)
        return Report(True, "service-bus-queue", "injected", "in")

    result = deploy(project, IMAGE, options, credential=FakeCredential(), settings=settings, blob_test=test,
                    sleep=lambda s: None)
    return result, tested


def roles_of(arm: FakeArm, principal: str) -> set[tuple[str, str]]:
    """(scope, role name) of a principal's assignments, named through the built-in roles reference."""
    names = {v: k for k, v in BUILTIN_ROLES.items()}
    return {(v["properties"]["scope"], names[v["properties"]["roleDefinitionId"].rsplit("/", 1)[-1]])
            for v in arm.store.values() if v.get("type") == "microsoft.authorization/roleassignments"
            and v["properties"]["principalId"] == principal}


def test_a_service_bus_app_gets_a_namespace_per_slot_its_queues_and_identity_roles(arm: FakeArm, example) -> None:  # noqa: ANN001
    project = load_project(example("diabetes-servicebus"))
    result, tested = deploy_bus(arm, project)
    assert result.passed and result.deployment.swapped
    prod, slot = f"{BUS}/bus-sbapp", f"{BUS}/bus-sbapp-stag"
    for namespace in (prod, slot):
        body = arm.get(namespace)
        assert body["sku"]["name"] == "Basic" and body["properties"]["disableLocalAuth"] is True
        for queue in ("scoring-requests", "scoring-results"):
            assert arm.get(f"{namespace}/queues/{queue}") is not None
    # Each global name was checked free before anything was written.
    checks = [i for i, r in enumerate(arm.requests)
              if r.path.lower().endswith("microsoft.servicebus/checknameavailability")]
    first_write = next(i for i, r in enumerate(arm.requests) if r.mutating)
    assert len(checks) == 2 and max(checks) < first_write
    # The identity: receive and send on both namespaces (the Functions docs' roles for trigger and output).
    identity = arm.get(f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/sb-app-id")["properties"]
    app_roles = roles_of(arm, identity["principalId"])
    for namespace in (prod, slot):
        assert (namespace.lower(), SERVICE_BUS_TRIGGER_ROLE) in app_roles
        assert (namespace.lower(), SERVICE_BUS_OUTPUT_ROLE) in app_roles
    # The deploying principal: the slot's namespace only, and the stamps container only.
    stamps = f"{RG}/providers/Microsoft.Storage/storageAccounts/sbapphost/blobServices/default/containers/" \
             f"{STAMP_CONTAINER}".lower()
    assert roles_of(arm, DEPLOYER_OID) == {(slot.lower(), SERVICE_BUS_OUTPUT_ROLE),
                                           (slot.lower(), SERVICE_BUS_TRIGGER_ROLE),
                                           (stamps, "Storage Blob Data Contributor")}
    # Each slot's connection names its own namespace, as ARM's serviceBusEndpoint gives it; sticky.
    site = f"{RG}/providers/Microsoft.Web/sites/sb-app"
    prod_settings = arm.get(f"{site}/config/appsettings")["properties"]
    slot_settings = arm.get(f"{site}/slots/staging/config/appsettings")["properties"]
    # (after the swap production holds what the slot was given, except the sticky settings)
    assert prod_settings[SETTING] == "bus-sbapp.servicebus.windows.net"
    assert slot_settings[SETTING] == "bus-sbapp-stag.servicebus.windows.net"
    for settings in (prod_settings, slot_settings):
        assert settings["ServiceBusConnection__credential"] == "managedidentity"
        assert settings["ServiceBusConnection__clientId"] == identity["clientId"]
    sticky = arm.get(f"{site}/config/slotconfignames")["properties"]["appSettingNames"]
    assert SETTING in sticky
    # The test was handed the slot's namespace and where the stamps are.
    (deployment,) = tested
    assert deployment.bus_namespace == "bus-sbapp-stag.servicebus.windows.net"
    assert deployment.stamps_account_url == "https://sbapphost.blob.core.windows.net"
    assert SlotDeployment.from_summary(deployment.summary()).bus_namespace == deployment.bus_namespace
    assert arm.get(f"{RG}/providers/Microsoft.Storage/storageAccounts/sbapphost/blobServices/default/containers/"
                   f"{STAMP_CONTAINER}") is not None
    # No blob trigger, no trigger storage (the az parity test found modelfunc creating two unused accounts).
    accounts = {v["name"] for v in arm.store.values() if v.get("type") == "microsoft.storage/storageaccounts"}
    assert accounts == {"sbapphost"}


def test_a_second_service_bus_deploy_writes_nothing(arm: FakeArm, example) -> None:  # noqa: ANN001
    project = load_project(example("diabetes-servicebus"))
    deploy_bus(arm, project)
    arm.requests.clear()
    result, tested = deploy_bus(arm, project)
    assert arm.mutating() == [] and tested == [] and result.passed


def test_a_taken_namespace_name_is_refused_before_any_write(arm: FakeArm, example) -> None:  # noqa: ANN001
    arm.names_taken_elsewhere.add("bus-sbapp-stag")
    with pytest.raises(OptionError) as e:
        deploy_bus(arm, load_project(example("diabetes-servicebus")))
    assert e.value.field == "storage-prefix" and "bus-sbapp-stag" in e.value.message
    assert arm.mutating() == []


def test_the_namespace_names_keep_to_the_documented_rules(arm: FakeArm, example) -> None:  # noqa: ANN001
    # The longest storage prefix gives the longest names; the fake refuses names outside the reference's rules.
    project = load_project(example("diabetes-servicebus"))
    result, _ = deploy_bus(arm, project, storage_prefix="z" * 20)
    assert result.passed
    assert arm.get(f"{BUS}/bus-{'z' * 20}-stag") is not None
    status, _, body = arm._put(f"{BUS}/bus-x-sb", {"location": "westeurope"})  # a reserved ending
    assert status == 400 and "invalid" in body["error"]["message"]


def test_dry_run_plans_the_namespaces_without_writing(arm: FakeArm, example) -> None:  # noqa: ANN001
    project = load_project(example("diabetes-servicebus"))
    plan_ = plan(project, IMAGE, DeployOptions(subscription_id=SUB, app_name="sb-app", resource_group="sb-rg",
                                               location="westeurope", storage_prefix="sbapp"),
                 credential=FakeCredential(), settings=PipelineSettings(transport=arm.transport(), polling_interval=0))
    text = plan_.render()
    assert arm.mutating() == []
    assert "create    Service Bus namespace bus-sbapp-stag" in text
    assert "create    queue bus-sbapp-stag/scoring-requests" in text


def test_destroy_removes_the_namespaces(arm: FakeArm, example) -> None:  # noqa: ANN001
    deploy_bus(arm, load_project(example("diabetes-servicebus")))
    destroy("sb-app", "sb-rg", subscription_id=SUB, credential=FakeCredential(),
            settings=PipelineSettings(transport=arm.transport(), polling_interval=0))
    assert arm.get(f"{BUS}/bus-sbapp") is None and arm.get(f"{BUS}/bus-sbapp-stag") is None
    assert arm.get(RG) is None


def test_flex_service_bus_app_gets_production_namespace_and_system_identity_roles(arm: FakeArm, example) -> None:  # noqa: ANN001
    from modelfunc.azure.flex import deploy_flex

    def vendor(requirements: Path, dest: Path, python_version: str) -> None:  # pip needs the network: one stand-in
        (dest / "placeholder").mkdir()

    arm.zip_functions = ["score_message"]
    project = load_project(example("diabetes-servicebus"))
    options = DeployOptions(subscription_id=SUB, app_name="sb-app", resource_group="sb-rg", location="westeurope",
                            storage_prefix="sbapp", hosting_plan="flex", timeout=60)
    deployment = deploy_flex(project, options, credential=FakeCredential(), vendor=vendor, sleep=lambda s: None,
                             settings=PipelineSettings(transport=arm.transport(), polling_interval=0))
    assert arm.get(f"{BUS}/bus-sbapp") is not None and arm.get(f"{BUS}/bus-sbapp-stag") is None  # no slot on Flex
    site = arm.get(f"{RG}/providers/Microsoft.Web/sites/sb-app")
    settings = arm.get(f"{RG}/providers/Microsoft.Web/sites/sb-app/config/appsettings")["properties"]
    assert settings[SETTING] == "bus-sbapp.servicebus.windows.net"
    assert roles_of(arm, site["identity"]["principalId"]) >= {
        (f"{BUS}/bus-sbapp".lower(), SERVICE_BUS_TRIGGER_ROLE), (f"{BUS}/bus-sbapp".lower(), SERVICE_BUS_OUTPUT_ROLE)}
    assert (f"{BUS}/bus-sbapp".lower(), SERVICE_BUS_OUTPUT_ROLE) in roles_of(arm, DEPLOYER_OID)
    assert deployment.bus_namespace == "bus-sbapp.servicebus.windows.net" and deployment.stamps_account_url
