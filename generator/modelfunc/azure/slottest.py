"""The test of a deployment in Azure: the sample's round trip against the slot (Flex: against production).

Each trigger is reached its own way, by identity: a blob trigger through the slot's own trigger storage, an HTTP
trigger at the slot's URL with its function key (read from ARM, never printed), a Service Bus trigger through the
slot's own namespace. One function per trigger class, chosen by the trigger's type (``functools.singledispatch``:
the trigger types live in the core, which knows nothing of ARM).
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any

from azure.core.credentials import TokenCredential

from ..config import Project
from ..errors import DeployError
from ..progress import Progress, quiet
from ..runtime.modelfunc_runtime import STAMP_CONTAINER
from ..triggers import BlobTrigger, HttpTrigger, ServiceBusQueueTrigger
from . import facts
from .clients import Clients, PipelineSettings, arm_call
from .results import SlotDeployment, deployment_id


def test_slot(project: Project, deployment: SlotDeployment, *, credential: TokenCredential,
              timeout: float | None = None,
              progress: Progress = quiet, settings: PipelineSettings | None = None) -> Any:
    """The sample's round trip against the slot; returns a roundtrip.TestReport.

    Blob trigger: the sample goes to the slot's own trigger storage (``deployment.trigger_account_url``)
    with ``credential`` (no key). HTTP trigger: POST to the slot's URL with its function key (read from
    ARM, never printed). Service Bus: the sample goes to the input queue of the slot's own namespace
    (``deployment.bus_namespace``) and the answer is read from its output queue, paired by the stamp the
    runtime writes in the host storage account (``deployment.stamps_account_url``); by identity.
    """
    trigger = project.trigger
    if timeout is None:
        timeout = facts.azure_test_timeout(trigger)
        progress(f"    waiting up to {timeout:.0f} s for the answer (the {trigger.type} trigger's documented latency; "
                 "--test-timeout changes it)")
    # only an answer from this image counts
    return _round_trip(trigger, project, deployment, credential=credential, timeout=timeout, progress=progress,
                       settings=settings, answered_by=deployment_id(deployment.image))


@singledispatch
def _round_trip(trigger: Any, project: Project, deployment: SlotDeployment, *, credential: TokenCredential,
                timeout: float, progress: Progress, settings: PipelineSettings | None, answered_by: str) -> Any:
    raise NotImplementedError(f"no Azure test for a {type(trigger).__name__}")


@_round_trip.register(BlobTrigger)
def _blob(trigger: BlobTrigger, project: Project, deployment: SlotDeployment, *, credential: TokenCredential,
          timeout: float, progress: Progress, settings: PipelineSettings | None, answered_by: str) -> Any:
    from ..roundtrip import round_trip

    return round_trip(project, account_url=deployment.trigger_account_url, credential=credential,
                      timeout=timeout, progress=progress, deployment=answered_by)


@_round_trip.register(HttpTrigger)
def _http(trigger: HttpTrigger, project: Project, deployment: SlotDeployment, *, credential: TokenCredential,
          timeout: float, progress: Progress, settings: PipelineSettings | None, answered_by: str) -> Any:
    from ..roundtrip import round_trip

    key = None
    if trigger.auth_level != "anonymous":
        clients = Clients(credential, deployment.subscription_id, settings or PipelineSettings())
        try:
            with arm_call(f"read the function keys of {deployment.app_name}"):
                web = clients.web.web_apps
                keys = web.list_host_keys_slot(deployment.resource_group, deployment.app_name, deployment.slot) \
                    if deployment.slot else web.list_host_keys(deployment.resource_group, deployment.app_name)
            key = keys.master_key if trigger.auth_level == "admin" else \
                (keys.function_keys or {}).get("default") or keys.master_key
        finally:
            clients.close()
    return round_trip(project, url=trigger.url(deployment.slot_url), function_key=key,
                      timeout=timeout, progress=progress, deployment=answered_by)


@_round_trip.register(ServiceBusQueueTrigger)
def _queue(trigger: ServiceBusQueueTrigger, project: Project, deployment: SlotDeployment, *,
           credential: TokenCredential, timeout: float, progress: Progress, settings: PipelineSettings | None,
           answered_by: str) -> Any:
    if not (deployment.bus_namespace and deployment.stamps_account_url):
        raise DeployError(f"the deployment of {deployment.app_name} names no Service Bus namespace to test on",
                          hint="deploy again (a deployment handed over by modelfunc 0.1 lacks it), or --no-test")
    from azure.storage.blob import ContainerClient

    from ..roundtrip.servicebus import run_queue_test

    stamps = ContainerClient(deployment.stamps_account_url, STAMP_CONTAINER, credential=credential)
    with stamps:
        return run_queue_test(project, namespace=deployment.bus_namespace, stamps=stamps, credential=credential,
                              deployment=answered_by, timeout=timeout, progress=progress)
