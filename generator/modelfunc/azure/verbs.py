"""The read-compare-write verbs both hosting plans share: resource group, identity, storage, plan, roles, app
settings, and waiting until a site is healthy.

Read before write: every resource is read first and written only when it differs, so a second deploy with
nothing changed sends no mutating request. App settings go into the create request (the host reads them at
its first start); later they are read, merged and written (a setting added by hand survives).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.mgmt.msi.models import Identity
from azure.mgmt.storage.models import BlobContainer, Sku, StorageAccountCreateParameters
from azure.mgmt.web.models import AppServicePlan, SkuDescription, StringDictionary

from ..config import Project
from ..errors import DeployError, OptionError, SlotUnhealthy
from ..progress import Progress
from . import credentials, facts
from .clients import Clients, PipelineSettings, arm_call
from .clients import read_or_none as _get
from .options import DeployOptions, Names
from .plan import Run
from .results import ServiceState, SlotDeployment


def _guid(resource_id: str) -> str:
    """The last segment of a role definition id, lower-cased (ids differ in case between ARM answers)."""
    return resource_id.rsplit("/", 1)[-1].lower()


def _short(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else resource_id


PLANNED_NAMESPACE = "(known once the namespace exists)"


def storage_url(account: str, service: str, storage_suffix: str) -> str:
    """The URL of a storage account's ``service`` ("blob", "queue") in the cloud of ``storage_suffix``."""
    return f"https://{account}.{service}.{storage_suffix}"


def blob_url(account: str, storage_suffix: str) -> str:
    return storage_url(account, "blob", storage_suffix)


def trigger_settings(project: Project, account: str, storage_suffix: str, namespace: str | None) -> dict[str, str]:
    """The settings that point the trigger's connection at a slot's own services: its storage ``account`` or its
    Service Bus ``namespace`` (the host name ARM gave; None before it exists)."""
    return project.trigger.connection_settings(lambda service: storage_url(account, service, storage_suffix),
                                               namespace or PLANNED_NAMESPACE)


PLANNED_URL = "(known once the site exists)"


def host_url(site: Any) -> str:
    """A site's URL from the host name ARM gives it (Azure shortens long site and slot names: never build it)."""
    host = getattr(site, "default_host_name", None) if site is not None else None
    return f"https://{host}" if host else PLANNED_URL


def make_run(credential: TokenCredential, names: Names, *, settings: PipelineSettings | None, dry_run: bool,
             progress: Progress, timeout: float, sleep: Callable[[float], None] | None,
             clock: Callable[[], float] | None) -> Run:
    clients = Clients(credential, names.subscription_id, settings or PipelineSettings())
    return Run(clients, dry_run=dry_run, progress=progress, timeout=timeout, sleep=sleep or time.sleep,
               clock=clock or time.monotonic)


@dataclass
class Deployer:
    """One deploy's state (the run, what is known of the resources so far) and the verbs both plans use."""

    run: Run
    project: Project
    options: DeployOptions
    names: Names
    principal: credentials.Principal | None = None
    location: str | None = None
    poll_interval: float = 10.0
    identity_principal_id: str | None = None  # the user-assigned identity's (None until it exists)
    client_id: str | None = None
    _role_ids: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def c(self) -> Clients:
        return self.run.clients

    @property
    def rg(self) -> str:
        return self.names.resource_group

    # ---- reads that can fail before anything is written

    def read(self, get: Any, get_slot: Any, slot: str | None, *, what: str) -> Any:
        """Read the app's ``get`` (production) or ``get_slot`` (a slot) answer: None when it does not exist."""
        if slot:
            return _get(get_slot, self.rg, self.names.app, slot, what=what)
        return _get(get, self.rg, self.names.app, what=what)

    def preflight(self) -> None:
        self.principal = credentials.check(self.c.credential, self.c.cloud.arm_scope)
        group = _get(self.c.resource.resource_groups.get, self.rg, what=f"resource group {self.rg}")
        if group is not None:
            self.location = self.names.location or group.location
        elif self.names.location:
            self.location = self.names.location
        else:
            raise OptionError(f"resource group {self.rg!r} does not exist, and no location was given to create it",
                              field="location", hint="e.g. --location westeurope")
        self._group = group

    # ---- resources

    def resource_group(self) -> None:
        name = f"resource group {self.rg}"
        if self._group is not None:
            self.run.step(name, "unchanged")
            return
        self.run.step(name, "create", lambda: self.c.resource.resource_groups.create_or_update(
            self.rg, {"location": self.location, "tags": self.names.tags}), detail=self.location or "")

    def identity(self) -> None:
        """The app's user-assigned identity, created before anything that uses it."""
        msi = self.c.msi.user_assigned_identities
        name = f"identity {self.names.identity}"
        current = _get(msi.get, self.rg, self.names.identity, what=name)
        if current is None:
            current = self.run.step(name, "create", lambda: msi.create_or_update(
                self.rg, self.names.identity, Identity(location=self.location, tags=self.names.tags)),
                detail="user-assigned; production and the slot both use it")
        else:
            self.run.step(name, "unchanged")
        if current is not None:
            self.identity_principal_id = current.principal_id
            self.client_id = current.client_id

    def storage_account(self, account: str, containers: list[str]) -> None:
        name = f"storage account {account}"
        current = _get(self.c.storage.storage_accounts.get_properties, self.rg, account, what=name)
        if current is None:
            params = StorageAccountCreateParameters(
                sku=Sku(name="Standard_LRS"), kind="StorageV2", location=self.location, tags=self.names.tags,
                minimum_tls_version="TLS1_2", allow_blob_public_access=False)

            def create() -> Any:
                try:
                    return self.run.wait(self.c.storage.storage_accounts.begin_create(self.rg, account, params), name)
                except DeployError as e:
                    if "AlreadyTaken" in e.message or "already taken" in e.message:
                        raise OptionError(f"storage account name {account!r} is taken (names are global)",
                                          field="storage-prefix", hint="choose another --storage-prefix") from None
                    raise

            self.run.step(name, "create", create)
        else:
            self.run.step(name, "unchanged")
        for container in containers:
            what = f"blob container {account}/{container}"
            existing = None if current is None else _get(self.c.storage.blob_containers.get, self.rg, account,
                                                          container, what=what)
            if existing is None:
                self.run.step(what, "create", lambda c=container: self.c.storage.blob_containers.create(
                    self.rg, account, c, BlobContainer(public_access="None")))
            else:
                self.run.step(what, "unchanged")

    def plan_resource(self, sku_name: str, tier: str, kind: str) -> None:
        """The app service plan, with the SKU (name, tier) and kind the hosting plan's path chose."""
        name = f"plan {self.names.plan}"
        current = _get(self.c.web.app_service_plans.get, self.rg, self.names.plan, what=name)
        desired = AppServicePlan(location=self.location, kind=kind, reserved=True, tags=self.names.tags,
                                 sku=SkuDescription(name=sku_name, tier=tier))
        if current is None:
            self.run.step(name, "create", lambda: self.run.wait(
                self.c.web.app_service_plans.begin_create_or_update(self.rg, self.names.plan, desired), name),
                detail=f"Linux, {sku_name}")
            return
        problems = []
        if not current.reserved:
            raise DeployError(f"{name} exists and is a Windows plan", hint="a container app needs a Linux plan: "
                              "delete the plan or choose another app name")
        current_sku = (current.sku.name if current.sku else "") or ""
        if current_sku.upper() != sku_name:
            problems.append(f"SKU {current_sku} -> {sku_name}")
        if problems:
            update = AppServicePlan(location=current.location, kind=current.kind, reserved=True,
                                    tags={**(current.tags or {})}, sku=SkuDescription(name=sku_name, tier=tier))
            self.run.step(name, "update", lambda: self.run.wait(
                self.c.web.app_service_plans.begin_create_or_update(self.rg, self.names.plan, update), name),
                detail=", ".join(problems))
        else:
            self.run.step(name, "unchanged")

    def roles(self, who: str, principal_id: str | None, principal_type: str, wanted: list[tuple[str, str]]) -> None:
        """Role assignments (scope, role name) for a principal: listed per scope, created when missing.

        Roles are named, never numbered: each is looked up at its scope (``roleDefinitions?$filter=roleName eq
        '…'``), as ``az role assignment create --role NAME`` does."""
        auth = self.c.authorization()
        by_scope: dict[str, list[str]] = {}
        for scope, role in wanted:
            by_scope.setdefault(scope, []).append(role)
        for scope, roles in by_scope.items():
            existing: set[str] = set()
            if principal_id is not None:
                with arm_call(f"list role assignments on {_short(scope)}"):
                    for assignment in auth.role_assignments.list_for_scope(
                            scope, filter=f"principalId eq '{principal_id}'"):
                        if (assignment.scope or "").lower() == scope.lower() or assignment.scope is None:
                            existing.add(_guid(assignment.role_definition_id or ""))
            for role in roles:
                label = f"role {role} for {who} on {_short(scope)}"
                definition = self._role_definition(scope, role)
                if definition is not None and _guid(definition) in existing:
                    self.run.step(label, "unchanged")
                    continue
                if principal_id is None:
                    self.run.step(label, "create", None, detail="once the identity exists")
                    continue
                self.run.step(label, "create", lambda s=scope, r=definition: self._assign(s, r, principal_id,
                                                                                          principal_type))

    def _role_definition(self, scope: str, role: str) -> str | None:
        """The role definition id of the built-in role named ``role`` (looked up once per subscription)."""
        sub = scope.split("/")[2].lower() if scope.lower().startswith("/subscriptions/") else ""
        key = (sub, role)
        if key not in self._role_ids:
            if not scope:  # dry run before the registry is known: nothing to look up yet
                return None
            with arm_call(f"look up role {role!r}"):
                found = [d for d in self.c.authorization().role_definitions.list(
                    scope, filter=f"roleName eq '{role}'") if d.role_name == role]
            if not found:
                raise DeployError(f"role {role!r} is not defined at {_short(scope)}",
                                  hint="it is an Azure built-in role: the signed-in principal needs read access "
                                       "to role definitions there (Microsoft.Authorization/roleDefinitions/read)")
            self._role_ids[key] = found[0].id
        return self._role_ids[key]

    def _assign(self, scope: str, role_definition_id: str, principal_id: str, principal_type: str) -> Any:
        name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{principal_id}|{_guid(role_definition_id)}"))
        params = RoleAssignmentCreateParameters(role_definition_id=role_definition_id, principal_id=principal_id,
                                                principal_type=principal_type)
        auth = self.c.authorization()
        for attempt in range(8):
            try:
                return auth.role_assignments.create(scope, name, params)
            except HttpResponseError as e:
                code = getattr(getattr(e, "error", None), "code", "") or ""
                if code == "RoleAssignmentExists":
                    return None
                if code != "PrincipalNotFound" or attempt == 7:
                    raise
                # A new identity takes a little while to replicate to Azure AD.
                self.run.progress("    the new identity is not visible yet; retrying in 10 s")
                self.run.sleep(10)
        return None

    def app_settings(self, slot: str | None, desired: dict[str, str]) -> dict[str, str]:
        """Read, merge, write (an existing site): settings added by hand are kept; only ``desired`` are set.

        Returns the merged settings."""
        web = self.c.web
        target = f"{self.names.app}" + (f" slot {slot}" if slot else "")
        what = f"app settings of {target}"
        found = self.read(web.web_apps.list_application_settings, web.web_apps.list_application_settings_slot, slot,
                          what=what)
        current = dict((found.properties if found else None) or {})
        if current.get(facts.MACHINE_KEY_SETTING):  # the host's stored keys are protected with it: keep it
            desired = {**desired, facts.MACHINE_KEY_SETTING: current[facts.MACHINE_KEY_SETTING]}
        merged, changed = self.run.settings_diff(target, current, desired)
        if not changed:
            self.run.step(what, "unchanged")
            return merged
        body = StringDictionary(properties=merged)
        fn = (lambda: web.web_apps.update_application_settings_slot(self.rg, self.names.app, slot, body)) if slot \
            else (lambda: web.web_apps.update_application_settings(self.rg, self.names.app, body))
        added = sum(1 for s in self.run.plan.settings if s.target == target and s.action in ("add", "change"))
        self.run.step(what, "update", fn, detail=f"{added} set, others kept")
        return merged

    # ---- readiness

    def wait_healthy(self, slot: str | None, *, deployment: SlotDeployment) -> SlotDeployment:
        web = self.c.web
        expected = self.project.trigger.function_name
        where = f"{self.names.app}" + (f" slot {slot}" if slot else "")
        started = self.run.clock()
        last = ""
        functions: tuple[str, ...] = ()
        restarted = False
        self.run.progress(f"==> wait for {where} to run and list function {expected!r}")
        while True:
            elapsed = self.run.clock() - started
            state = "Unknown"
            try:
                with arm_call(f"read {where}"):
                    site = web.web_apps.get_slot(self.rg, self.names.app, slot, retry_total=1) if slot else \
                        web.web_apps.get(self.rg, self.names.app, retry_total=1)
                    state = site.state or "Unknown"
                    if state.lower() == "running":
                        listed = web.web_apps.list_instance_functions_slot(self.rg, self.names.app, slot,
                                                                          retry_total=1) if slot else \
                            web.web_apps.list_functions(self.rg, self.names.app, retry_total=1)
                        functions = tuple(sorted((f.name or "").split("/")[-1] for f in listed))
            except DeployError as e:
                last = e.message  # the host is still starting: its function list answers with an error
            if state.lower() == "stopped":
                deployment.state = ServiceState.FAILED
                raise SlotUnhealthy(f"{where} is stopped", deployment,
                                    hint=f"start it (az functionapp start -n {self.names.app} -g {self.rg}"
                                         + (f" --slot {slot}" if slot else "") + ") and deploy again")
            deployment.functions = functions
            if state.lower() == "running" and expected in functions:
                deployment.state = ServiceState.HEALTHY
                self.run.progress(f"    {where}: Healthy (functions: {', '.join(functions)})")
                return deployment
            if not restarted and elapsed >= self.run.timeout / 3:
                # A pull refused while the identity's AcrPull was still propagating is not retried by itself.
                restarted = True
                self.run.progress(f"    {where} is not healthy after {elapsed:.0f} s: restarting it once")
                with arm_call(f"restart {where}"):
                    if slot:
                        web.web_apps.restart_slot(self.rg, self.names.app, slot)
                    else:
                        web.web_apps.restart(self.rg, self.names.app)
            if elapsed > self.run.timeout:
                deployment.state = ServiceState.UNHEALTHY if state.lower() == "running" else ServiceState.FAILED
                listed_text = ", ".join(functions) or "none"
                raise SlotUnhealthy(
                    f"{where} is {deployment.state.value}: after {self.run.timeout:.0f} s it is {state} and lists "
                    f"functions: {listed_text} (expected {expected!r})" + (f"; last error: {last}" if last else ""),
                    deployment,
                    hint=f"read the container log (az webapp log tail -n {self.names.app} -g {self.rg}"
                         + (f" --slot {slot}" if slot else "") + "); a new identity's AcrPull can take minutes to "
                         "apply — deploy again, or raise --timeout. Production was not changed.")
            deployment.state = ServiceState.TRANSITIONING
            self.run.progress(f"    {where}: Transitioning (state {state}, functions: "
                              f"{', '.join(functions) or 'none yet'}, {elapsed:.0f} s)")
            self.run.sleep(self.poll_interval)
