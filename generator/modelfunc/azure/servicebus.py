"""A service-bus-queue app's messaging in Azure: a namespace per slot, with the app's input and output queues.

Production listens on ``bus-<prefix>`` and the slot on ``bus-<prefix>-stag``, each holding queues with the
names modelfunc.yaml gives, so the app's code is the same on both sides of a swap and a slot under test never
takes production's messages. The connection is by identity only: the namespaces are created with local (SAS key)
auth disabled, each slot's ``<connection>__fullyQualifiedNamespace`` names its own namespace (a sticky setting:
``trigger.slot_settings``),
and the app's user-assigned identity gets Data Receiver and Data Sender on both (facts.py has the sources).
The deploying principal gets Data Sender and Data Receiver on the slot's namespace only, for the test.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from azure.mgmt.servicebus.models import CheckNameAvailability, SBNamespace, SBQueue, SBSku

from ..errors import OptionError
from ..runtime.modelfunc_runtime import STAMP_CONTAINER
from . import facts
from .clients import arm_call
from .clients import read_or_none as _get
from .options import Names


def namespaces(names: Names) -> list[str]:
    return [n for n in (names.bus_namespace, names.slot_bus_namespace) if n]


def stamps_scope(names: Names) -> str:
    """The host storage container the runtime stamps queue answers in: the test reads it, nothing else there."""
    return f"{names.storage_id(names.host_storage)}/blobServices/default/containers/{STAMP_CONTAINER}"


def app_roles(names: Names) -> list[tuple[str, str]]:
    """The app identity's roles: receive and send on every namespace it may run against (both sides of a swap)."""
    return [(names.bus_namespace_id(n), role) for n in namespaces(names) for role in facts.BUS_APP_ROLES]


def test_roles(names: Names, namespace: str) -> list[tuple[str, str]]:
    """The deploying principal's roles for the test: send and receive on the namespace under test, and read
    (and clean up) the answer stamps."""
    return [(names.bus_namespace_id(namespace), role) for role in facts.BUS_TEST_ROLES] + \
        [(stamps_scope(names), facts.BLOB_TEST_ROLE)]


def preflight(d: Any) -> dict[str, Any]:
    """Each namespace as ARM has it (None: to be created), a missing one's global name checked to be free —
    before anything is written, so a taken name leaves nothing half-done."""
    ops, names = d.c.servicebus.namespaces, d.names
    found: dict[str, Any] = {}
    for namespace in namespaces(names):
        current = _get(ops.get, names.resource_group, namespace, what=f"Service Bus namespace {namespace}")
        if current is None:
            with arm_call(f"check the name {namespace}"):
                available = ops.check_name_availability(CheckNameAvailability(name=namespace))
            if not available.name_available:
                raise OptionError(f"Service Bus namespace name {namespace!r} is not available "
                                  f"({available.reason or 'taken'}: {available.message or 'names are global'})",
                                  field="storage-prefix", hint="choose another --storage-prefix (the namespaces are "
                                                               "bus-<prefix> and bus-<prefix>-stag)")
        found[namespace] = current
    return found


def ensure_namespace(d: Any, namespace: str, current: Any) -> str | None:
    """The namespace (``current``: as :func:`preflight` read it) and the app's two queues, created when missing.

    ``d`` is the deployer (its run, clients, names, location and project). Returns the namespace's host name
    as ARM gives it (``serviceBusEndpoint``), None on a dry run before it exists."""
    run, c, names, trigger = d.run, d.c, d.names, d.project.trigger
    ops = c.servicebus.namespaces
    what = f"Service Bus namespace {namespace}"
    created = current is None
    if created:
        params = SBNamespace(location=d.location, tags=names.tags, sku=SBSku(name=facts.BUS_SKU, tier=facts.BUS_SKU),
                             disable_local_auth=True, minimum_tls_version="1.2")
        current = run.step(what, "create", lambda: run.wait(
            ops.begin_create_or_update(names.resource_group, namespace, params), what),
            detail=f"{facts.BUS_SKU}, identity only (local auth disabled)")
    else:
        run.step(what, "unchanged")
    queues = c.servicebus.queues
    for queue in trigger.queues:
        label = f"queue {namespace}/{queue}"
        existing = None if created else _get(queues.get, names.resource_group, namespace, queue, what=label)
        if existing is None:
            run.step(label, "create", lambda q=queue: queues.create_or_update(
                names.resource_group, namespace, q, SBQueue()))
        else:
            run.step(label, "unchanged")
    endpoint = getattr(current, "service_bus_endpoint", None) if current is not None else None
    return urlsplit(endpoint).hostname if endpoint else None
