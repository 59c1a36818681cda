"""Remove what modelfunc created for an app — found by its tag ``modelfunc-app: <app>`` — and nothing else.

Order: Event Grid system topics, the function app (its slots go with it, after the role assignments of
any system-assigned identities they have), the app's user-assigned identity (after its role assignments),
the plan, the storage accounts; then the resource group when modelfunc created it (tagged) and it is
empty. Anything already gone counts as removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError

from ..errors import OptionError
from ..progress import Progress, quiet
from . import credentials
from .clients import Clients, PipelineSettings, arm_call, read_or_none
from .options import APP_RE, RG_RE, TAG
from .plan import Plan, Run

IDENTITY_TYPE = "microsoft.managedidentity/userassignedidentities"
BUS_TYPE = "microsoft.servicebus/namespaces"
_ORDER = ("microsoft.eventgrid/systemtopics", "microsoft.web/sites", IDENTITY_TYPE, "microsoft.web/serverfarms",
          "microsoft.storage/storageaccounts", BUS_TYPE)


def _gone(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return fn()
        except ResourceNotFoundError:
            return None  # already gone: that is what destroy wants

    return run


def destroy(app_name: str, resource_group: str | None = None, *, subscription_id: str, credential: TokenCredential,
            progress: Progress = quiet, settings: PipelineSettings | None = None, dry_run: bool = False,
            timeout: float = 900.0) -> Plan:
    """Delete every resource tagged ``modelfunc-app: <app_name>`` in the resource group (default ``<app>-rg``).

    Succeeds when they are already gone. ``dry_run`` lists what would be deleted (GETs only).
    Action step (e.g. a clean-up job): pass the app-name and resource-group inputs and the credential.
    """
    if not APP_RE.fullmatch(app_name or ""):
        raise OptionError(f"{app_name!r} is not a valid function app name", field="app-name",
                          hint="the name given to `modelfunc deploy`, e.g. diabetes-scorer")
    rg = resource_group or f"{app_name}-rg"
    if not RG_RE.fullmatch(rg):
        raise OptionError(f"{rg!r} is not a valid resource group name", field="resource-group")
    clients = Clients(credential, subscription_id, settings or PipelineSettings())
    run = Run(clients, dry_run=dry_run, progress=progress, timeout=timeout, sleep=time.sleep)
    try:
        credentials.check(credential, clients.cloud.arm_scope)
        group = read_or_none(clients.resource.resource_groups.get, rg, what=f"resource group {rg}")
        if group is None:
            run.plan.notes.append(f"resource group {rg} does not exist: nothing to remove")
            return run.plan
        with arm_call(f"list the resources of {app_name} in {rg}"):
            found = list(clients.resource.resources.list_by_resource_group(
                rg, filter=f"tagName eq '{TAG}' and tagValue eq '{app_name}'"))
        found.sort(key=lambda r: _ORDER.index(r.type.lower()) if (r.type or "").lower() in _ORDER else len(_ORDER))
        web = clients.web.web_apps
        for resource in found:
            kind = (resource.type or "").lower()
            if kind == "microsoft.web/sites":
                _remove_role_assignments(run, clients, rg, resource.name)
                run.step(f"function app {resource.name} (and its slots)", "delete",
                         _gone(lambda r=resource: web.delete(rg, r.name)))
            elif kind == IDENTITY_TYPE:
                identities = clients.msi.user_assigned_identities
                identity = read_or_none(identities.get, rg, resource.name, what=f"identity {resource.name}")
                principal_id = identity.principal_id if identity is not None else None
                if principal_id:
                    _remove_assignments_of(run, clients, f"identity {resource.name}", principal_id)
                run.step(f"identity {resource.name}", "delete",
                         _gone(lambda r=resource, ids=identities: ids.delete(rg, r.name)))
            elif kind == "microsoft.web/serverfarms":
                run.step(f"plan {resource.name}", "delete",
                         _gone(lambda r=resource: clients.web.app_service_plans.delete(rg, r.name)))
            elif kind == "microsoft.storage/storageaccounts":
                run.step(f"storage account {resource.name}", "delete",
                         _gone(lambda r=resource: clients.storage.storage_accounts.delete(rg, r.name)))
            elif kind == BUS_TYPE:
                run.step(f"Service Bus namespace {resource.name} (and its queues)", "delete", _gone(
                    lambda r=resource: run.wait(clients.servicebus.namespaces.begin_delete(rg, r.name),
                                                f"delete {r.name}")))
            elif kind == "microsoft.eventgrid/systemtopics":
                run.step(f"event grid topic {resource.name}", "delete", _gone(lambda r=resource: run.wait(
                    clients.eventgrid.system_topics.begin_delete(rg, r.name), f"delete {r.name}")))
            else:
                run.plan.notes.append(f"{resource.type} {resource.name} is tagged for {app_name} but modelfunc does "
                                      "not create that type: left in place")
        if (group.tags or {}).get(TAG) == app_name:
            with arm_call(f"list the resources in {rg}"):
                left = [r for r in clients.resource.resources.list_by_resource_group(rg)
                        if not any(r.id == f.id for f in found)]
            if left:
                held = ", ".join(sorted(r.name or "" for r in left)[:10])
                run.plan.notes.append(f"resource group {rg} still holds what modelfunc did not create ({held}): kept")
            else:
                run.step(f"resource group {rg}", "delete", _gone(lambda: run.wait(
                    clients.resource.resource_groups.begin_delete(rg), f"delete resource group {rg}")))
        if not run.plan.changes:
            run.plan.notes.append(f"nothing tagged {TAG}={app_name} in {rg}: already removed")
        return run.plan
    finally:
        clients.close()


def _remove_role_assignments(run: Run, clients: Clients, rg: str, app: str) -> None:
    web = clients.web.web_apps
    principals: list[tuple[str, str]] = []
    with arm_call(f"read function app {app}"):
        try:
            site = web.get(rg, app)
        except ResourceNotFoundError:
            return
        if site.identity and site.identity.principal_id:
            principals.append((app, site.identity.principal_id))
        for slot in web.list_slots(rg, app):
            if slot.identity and slot.identity.principal_id:
                principals.append((slot.name or "", slot.identity.principal_id))
    for who, principal_id in principals:
        _remove_assignments_of(run, clients, who, principal_id)


def _remove_assignments_of(run: Run, clients: Clients, who: str, principal_id: str) -> None:
    auth = clients.authorization()
    with arm_call(f"list the role assignments of {who}"):
        assignments = list(auth.role_assignments.list_for_subscription(filter=f"principalId eq '{principal_id}'"))
    for assignment in assignments:
        scope = (assignment.scope or "").rstrip("/").rsplit("/", 1)[-1]
        run.step(f"role assignment of {who} on {scope}", "delete",
                 _gone(lambda a=assignment: auth.role_assignments.delete_by_id(a.id)))
