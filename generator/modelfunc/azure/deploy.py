"""Deploy an image (by digest) to Azure Functions through a staging slot: provision, ship, wait, test, swap.

The library entry points (the CLI and the action's scripts call these):

* :func:`plan` — read-only: every resource create / update / unchanged and the settings diff (masked);
* :func:`deploy_to_slot` — provision idempotently, put the image on the slot, wait until it is Healthy;
* :func:`test_slot` — the sample's round trip against the slot (its own trigger storage, by identity);
* :func:`swap` — the slot into production (only after the test passed);
* :func:`deploy` — all of the above in order; :func:`modelfunc.azure.destroy.destroy` removes it again.

Read before write: every resource is read first and written only when it differs, so a second deploy with
nothing changed sends no mutating request. App settings go into the create request (the host reads them at
its first start); later they are read, merged and written (a setting added by hand survives).

Identity everywhere, in this order: one user-assigned identity is created first and given its roles (AcrPull
on the registry, the storage roles the Functions docs list — see :mod:`.facts`) before any site exists;
production and the slot are created with that identity and ``acrUseManagedIdentityCreds`` /
``acrUserManagedIdentityID`` on the empty Functions base image, and only then does the slot get the
registry image (``linuxFxVersion``). Identities do not move with a swap, so one identity for both slots keeps
both sides' rights through it. No registry password, storage key or connection string is created or stored.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.mgmt.msi.models import Identity
from azure.mgmt.storage.models import BlobContainer, Sku, StorageAccountCreateParameters
from azure.mgmt.web.models import (
    AppServicePlan,
    CsmSlotEntity,
    ManagedServiceIdentity,
    NameValuePair,
    Site,
    SiteConfig,
    SiteConfigResource,
    SkuDescription,
    SlotConfigNamesResource,
    StringDictionary,
)

from ..appgen import FUNCTION_NAMES
from ..blobpath import BlobPath
from ..config import Project
from ..errors import DeployError, OptionError
from ..runtime.modelfunc_runtime import DEPLOYMENT_SETTING, STAMP_CONTAINER
from . import credentials, facts
from .clients import Clients, PipelineSettings, arm_call
from .clients import read_or_none as _get
from .engine import Change, Plan, Progress, Run, _quiet
from .options import FLEX_SKU, SKUS, DeployOptions, Image, Names, parse_image, resolve_names

SITE_KIND = "functionapp,linux,container"


class ServiceState(str, enum.Enum):
    """The state of a deployed app as the retired azureml SDK reported it."""

    TRANSITIONING = "Transitioning"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    FAILED = "Failed"


@dataclass
class SlotDeployment:
    """What :func:`deploy_to_slot` did and where the result runs.

    ``changed`` is False when production already runs the image (nothing to test or swap). The blob test
    reaches the slot's trigger storage at ``trigger_account_url`` with the deploying credential (the
    deploy gave it Storage Blob Data Contributor there).
    """

    subscription_id: str
    resource_group: str
    app_name: str
    slot: str | None  # None: production itself (Flex Consumption has no slots)
    image: str
    app_url: str
    slot_url: str
    state: ServiceState
    changed: bool
    functions: tuple[str, ...] = ()
    trigger_account_url: str | None = None
    plan: Plan = field(default_factory=Plan)
    swapped: bool = False

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> SlotDeployment:
        """Rebuild from :meth:`summary` (plus ``subscription_id``): how a later action step gets the deployment."""
        return cls(data["subscription_id"], data["resource_group"], data["app_name"], data.get("slot"), data["image"],
                   data["app_url"], data["slot_url"], ServiceState(data["state"]), bool(data["changed"]),
                   tuple(data.get("functions") or ()), data.get("trigger_account_url"),
                   swapped=bool(data.get("swapped")))

    def summary(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "app_name": self.app_name,
                "resource_group": self.resource_group, "slot": self.slot,
                "image": self.image, "app_url": self.app_url, "slot_url": self.slot_url, "state": self.state.value,
                "changed": self.changed, "functions": list(self.functions), "swapped": self.swapped,
                "trigger_account_url": self.trigger_account_url}


class SlotUnhealthy(DeployError):
    """The slot did not become Healthy in time (or failed); production was not touched."""

    def __init__(self, message: str, deployment: SlotDeployment, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.deployment = deployment


# ------------------------------------------------------------------------------------------- helpers


def _guid(resource_id: str) -> str:
    """The last segment of a role definition id, lower-cased (ids differ in case between ARM answers)."""
    return resource_id.rsplit("/", 1)[-1].lower()


def _short(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else resource_id


def _blob_url(account: str, storage_suffix: str) -> str:
    return f"https://{account}.blob.{storage_suffix}"


def _queue_url(account: str, storage_suffix: str) -> str:
    return f"https://{account}.queue.{storage_suffix}"


def _containers(project: Project) -> list[str]:
    trigger = project.trigger
    if trigger.type != "blob":
        return []
    paths = (trigger.input_path, trigger.output_path, trigger.error_path)
    return [*dict.fromkeys(BlobPath.parse(p).container for p in paths), STAMP_CONTAINER]


def deployment_id(image: str) -> str:
    """The id a deployment's answers carry: the image's digest (``sha256:…``; a Flex package's likewise)."""
    return image.rsplit("@", 1)[-1]


UNKNOWN_CLIENT_ID = "(the identity's client id, once created)"


def desired_settings(project: Project, names: Names, trigger_account: str, options: DeployOptions, *,
                     client_id: str | None, storage_suffix: str, registry: str | None = None,
                     slot: str | None = None) -> dict[str, str]:
    """The app settings modelfunc owns for one slot (identity-based connections; Redis only when given).

    ``client_id`` is the user-assigned identity's; ``storage_suffix`` the cloud's; ``registry`` the login
    server the image comes from; ``slot`` None is production.
    """
    client = client_id or UNKNOWN_CLIENT_ID
    settings = {
        "FUNCTIONS_EXTENSION_VERSION": "~4",
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "WEBSITES_ENABLE_APP_SERVICE_STORAGE": "false",
        "AzureWebJobsStorage__accountName": names.host_storage,
        **facts.identity_connection("AzureWebJobsStorage", client),
        # A new one for a new site; an existing site keeps its own (see _Deployer.app_settings).
        facts.MACHINE_KEY_SETTING: facts.new_machine_key(),
    }
    if registry:
        settings[facts.REGISTRY_URL_SETTING] = f"https://{registry}"
    trigger = project.trigger
    if trigger.type == "blob":
        settings[f"{trigger.connection}__blobServiceUri"] = _blob_url(trigger_account, storage_suffix)
        settings[f"{trigger.connection}__queueServiceUri"] = _queue_url(trigger_account, storage_suffix)
        settings.update(facts.identity_connection(trigger.connection, client))
    if names.slot and facts.host_ids_collide(names.app, names.slot):
        settings[facts.HOST_ID_SETTING] = facts.explicit_host_id(names.app, slot)
    cache = project.config.cache
    if cache is not None and cache.redis is not None and options.redis_connection_string:
        settings[cache.redis.connection] = options.redis_connection_string
    return settings


def sticky_settings(project: Project, names: Names) -> list[str]:
    """Settings that stay with their slot on a swap: each slot listens to its own trigger storage, and keeps
    its own host ID when the derived ones would collide (see :func:`facts.host_ids_collide`)."""
    trigger = project.trigger
    sticky = [facts.MACHINE_KEY_SETTING]
    if trigger.type == "blob":
        sticky += [f"{trigger.connection}__blobServiceUri", f"{trigger.connection}__queueServiceUri"]
    if names.slot and facts.host_ids_collide(names.app, names.slot):
        sticky.append(facts.HOST_ID_SETTING)
    return sticky


# ------------------------------------------------------------------------------------------- deployer


@dataclass
class _Deployer:
    run: Run
    project: Project
    image: Image
    options: DeployOptions
    names: Names
    principal: credentials.Principal | None = None
    location: str | None = None
    registry_id: str | None = None
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
        if self.options.hosting_plan == "premium-container":
            self.registry_id = self._registry_id()

    def _registry_id(self) -> str:
        option = self.options.registry
        if option and option.lower().startswith("/subscriptions/"):
            if "/providers/microsoft.containerregistry/registries/" not in option.lower():
                raise OptionError(f"{option!r} is not a container registry resource id", field="registry",
                                  hint="/subscriptions/<id>/resourceGroups/<rg>/providers/"
                                       "Microsoft.ContainerRegistry/registries/<name>")
            return option
        login = (option or self.image.registry).lower()
        acr_suffix = self.c.cloud.acr_suffix.lower().lstrip(".")
        if "." not in login:
            login = f"{login}.{acr_suffix}"
        if login != self.image.registry:
            raise OptionError(f"the image is in {self.image.registry}, not in the registry {login}", field="registry",
                              hint="leave --registry out: it defaults to the image's registry")
        if not login.split(":")[0].endswith(f".{acr_suffix}"):
            raise OptionError(f"{self.image.registry} is not an Azure Container Registry: the app pulls with its "
                              "managed identity (AcrPull), which only an Azure Container Registry grants",
                              field="image", hint=f"push the image to <name>.{acr_suffix} with `modelfunc package "
                                                  f"--image <name>.{acr_suffix}/<repository>`")
        with arm_call("list container registries"):
            for registry in self.c.registry().registries.list():
                if (registry.login_server or "").lower() == login:
                    return registry.id
        raise OptionError(f"registry {login} was not found in subscription {self.names.subscription_id}",
                          field="registry", hint="pass its resource id: --registry /subscriptions/<id>/resourceGroups/"
                                                 "<rg>/providers/Microsoft.ContainerRegistry/registries/<name>")

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

    def plan_resource(self) -> None:
        name = f"plan {self.names.plan}"
        if self.options.hosting_plan == "flex":
            sku_name, tier = FLEX_SKU
            kind = "functionapp"
        else:
            sku_name = self.options.sku.upper()
            tier = SKUS[sku_name]
            kind = "elastic" if tier == "ElasticPremium" else "linux"
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

    def _identity(self) -> ManagedServiceIdentity:
        return ManagedServiceIdentity(type="UserAssigned", user_assigned_identities={self.names.identity_id: {}})

    def _site_envelope(self, settings: dict[str, str]) -> Site:
        # On the empty Functions host image: the registry image comes only after identity and flags are set.
        base = f"DOCKER|{self.project.default_base_image}"
        return Site(location=self.location, kind=SITE_KIND, tags=self.names.tags, https_only=True,
                    server_farm_id=self.names.plan_id, identity=self._identity(),
                    site_config=SiteConfig(linux_fx_version=base, acr_use_managed_identity_creds=True,
                                           acr_user_managed_identity_id=self.client_id,
                                           ftps_state="Disabled", min_tls_version="1.2",
                                           app_settings=[NameValuePair(name=k, value=v)
                                                         for k, v in sorted(settings.items())]))

    def site(self, slot: str | None, settings: dict[str, str]) -> tuple[Any, bool]:
        """The production site (slot None) or a slot: created when missing (with the identity, the ACR flags
        and ``settings``, on the empty base image); returns (site, created)."""
        web = self.c.web
        name = f"function app {self.names.app}" + (f" slot {slot}" if slot else "")
        if slot:
            current = _get(web.web_apps.get_slot, self.rg, self.names.app, slot, what=name)
        else:
            current = _get(web.web_apps.get, self.rg, self.names.app, what=name)
        if current is None:
            envelope = self._site_envelope(settings)
            target = f"{self.names.app}" + (f" slot {slot}" if slot else "")
            self.run.settings_diff(target, {}, settings)  # shown in the plan; sent in the create itself
            detail = f"{SITE_KIND}, identity {self.names.identity}, {len(settings)} settings, empty base image"
            if slot:
                created = self.run.step(name, "create", lambda: self.run.wait(
                    web.web_apps.begin_create_or_update_slot(self.rg, self.names.app, slot, envelope), name),
                    detail=detail)
            else:
                created = self.run.step(name, "create", lambda: self.run.wait(
                    web.web_apps.begin_create_or_update(self.rg, self.names.app, envelope), name), detail=detail)
            return created, True
        if current.kind and "container" not in current.kind.lower():
            raise DeployError(f"{name} exists but is not a container app (kind {current.kind!r})",
                              hint="choose another --app-name, or use --hosting-plan flex for a code app")
        identity = current.identity
        kind = str(getattr(identity.type, "value", identity.type) or "") if identity else ""
        attached = {k.lower() for k in ((identity.user_assigned_identities or {}) if identity else {})}
        if self.names.identity_id.lower() not in attached:
            # Keep a system-assigned identity a site already has (something else may rely on it).
            new_type = "SystemAssigned, UserAssigned" if "systemassigned" in kind.lower() else "UserAssigned"
            patch = {"identity": {"type": new_type, "userAssignedIdentities": {self.names.identity_id: {}}}}
            fn = (lambda: web.web_apps.update_slot(self.rg, self.names.app, slot, patch)) if slot else \
                (lambda: web.web_apps.update(self.rg, self.names.app, patch))
            updated = self.run.step(name, "update", fn, detail=f"identity {self.names.identity}")
            return updated or current, False
        self.run.step(name, "unchanged")
        return current, False

    def container(self, slot: str | None, *, image: str | None) -> str:
        """A site's container config: pulled with the user-assigned identity, and (``image`` given) that image
        by digest. ``image`` None keeps the image (production: it changes only by a swap). Returns the image the
        site ran before (its ``linuxFxVersion``; "" when none)."""
        web = self.c.web
        name = f"container of {self.names.app}" + (f" slot {slot}" if slot else "")
        if slot:
            config = _get(web.web_apps.get_configuration_slot, self.rg, self.names.app, slot, what=name)
        else:
            config = _get(web.web_apps.get_configuration, self.rg, self.names.app, what=name)
        current_image = (config.linux_fx_version if config else None) or ""
        problems = []
        if not (config and config.acr_use_managed_identity_creds):
            problems.append("acrUseManagedIdentityCreds")
        if self.client_id is None or (config and config.acr_user_managed_identity_id or "").lower() != \
                self.client_id.lower():
            problems.append(f"acrUserManagedIdentityID ({self.names.identity})")
        if image is not None and current_image != image:
            problems.append(f"{current_image or '(none)'} -> {image}")
        if not problems:
            self.run.step(name, "unchanged", detail=current_image)
            return current_image
        # The flags first, in the same request as the image: the pull that the image change starts already
        # uses the identity, which has had AcrPull since before the site existed.
        patch = SiteConfigResource(acr_use_managed_identity_creds=True, acr_user_managed_identity_id=self.client_id,
                                   **({"linux_fx_version": image} if image is not None else {}))
        if slot:
            self.run.step(name, "update", lambda: web.web_apps.update_configuration_slot(
                self.rg, self.names.app, slot, patch), detail=", ".join(problems))
        else:
            self.run.step(name, "update", lambda: web.web_apps.update_configuration(self.rg, self.names.app, patch),
                          detail=", ".join(problems))
        return current_image

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

    def slot_config_names(self) -> None:
        names = sticky_settings(self.project, self.names)
        if not names:
            return
        web = self.c.web
        what = f"slot settings of {self.names.app}"
        current = _get(web.web_apps.list_slot_configuration_names, self.rg, self.names.app, what=what)
        have = list((current.app_setting_names if current else None) or [])
        missing = [n for n in names if n not in have]
        if not missing:
            self.run.step(what, "unchanged", detail=", ".join(names))
            return
        body = SlotConfigNamesResource(
            app_setting_names=have + missing,
            connection_string_names=list((current.connection_string_names if current else None) or []),
            azure_storage_config_names=list((current.azure_storage_config_names if current else None) or []))
        self.run.step(what, "update", lambda: web.web_apps.update_slot_configuration_names(
            self.rg, self.names.app, body), detail=f"sticky: {', '.join(missing)}")

    def desired(self, slot: str | None, trigger_account: str) -> dict[str, str]:
        return desired_settings(self.project, self.names, trigger_account, self.options, client_id=self.client_id,
                                storage_suffix=self.c.cloud.storage_suffix, registry=self.image.registry, slot=slot)

    def app_settings(self, slot: str | None, desired: dict[str, str]) -> dict[str, str]:
        """Read, merge, write (an existing site): settings added by hand are kept; only ``desired`` are set.

        Returns the merged settings."""
        web = self.c.web
        target = f"{self.names.app}" + (f" slot {slot}" if slot else "")
        what = f"app settings of {target}"
        if slot:
            found = _get(web.web_apps.list_application_settings_slot, self.rg, self.names.app, slot, what=what)
        else:
            found = _get(web.web_apps.list_application_settings, self.rg, self.names.app, what=what)
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

    def stamp(self, slot: str, desired: dict[str, str], image: Image, *, slot_created: bool) -> None:
        """Name the deployment in the slot's settings — only now that the slot runs its image, so a container
        that answers with this id runs this image — and make the host list its functions again."""
        settings = {**desired, DEPLOYMENT_SETTING: deployment_id(image.reference)}
        if self.run.dry_run and slot_created:  # nothing to read yet: the slot is only planned
            target = f"{self.names.app} slot {slot}"
            self.run.settings_diff(target, desired, settings)
            self.run.step(f"app settings of {target}", "update", None, detail="the deployment id, after the image")
        else:
            self.app_settings(slot, settings)
        web = self.c.web.web_apps
        self.run.step(f"function triggers of {self.names.app} slot {slot}", "update",
                      lambda: web.sync_function_triggers_slot(self.rg, self.names.app, slot),
                      detail="sync: ARM's function list is a cache the host fills")

    # ---- readiness

    def wait_healthy(self, slot: str | None, *, deployment: SlotDeployment) -> SlotDeployment:
        web = self.c.web
        expected = FUNCTION_NAMES[self.project.trigger.type]
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


PLANNED_URL = "(known once the site exists)"


def _host_url(site: Any) -> str:
    """A site's URL from the host name ARM gives it (Azure shortens long site and slot names: never build it)."""
    host = getattr(site, "default_host_name", None) if site is not None else None
    return f"https://{host}" if host else PLANNED_URL


def _make_run(credential: TokenCredential, names: Names, *, settings: PipelineSettings | None, dry_run: bool,
              progress: Progress, timeout: float, sleep: Callable[[float], None] | None,
              clock: Callable[[], float] | None) -> Run:
    clients = Clients(credential, names.subscription_id, settings or PipelineSettings())
    return Run(clients, dry_run=dry_run, progress=progress, timeout=timeout, sleep=sleep or time.sleep,
               clock=clock or time.monotonic)


def _reconcile(d: _Deployer) -> SlotDeployment:
    """Provision (or plan) everything for a premium-container app and put the image on the slot.

    The order matters on a first deploy: the identity and its roles exist before any site that uses them;
    the sites are created with their settings, the identity and the ACR flags on the empty base image; the
    slot gets the registry image last.
    """
    names, run = d.names, d.run
    slot = names.slot
    assert slot is not None and names.slot_trigger_storage is not None
    d.preflight()
    d.resource_group()
    d.identity()
    containers = _containers(d.project)
    d.storage_account(names.host_storage, [])
    d.storage_account(names.trigger_storage, containers)
    d.storage_account(names.slot_trigger_storage, containers)
    d.plan_resource()

    trigger_type = d.project.trigger.type
    trigger_roles = facts.BLOB_TRIGGER_ROLES if trigger_type == "blob" else ()
    # One identity for both slots: each slot's settings name its own trigger account, and the identity may
    # use both, so neither side loses access when a swap moves the settings.
    d.roles(f"identity {names.identity}", d.identity_principal_id, "ServicePrincipal",
            [(d.registry_id or "", facts.ACR_PULL)]
            + [(names.storage_id(names.host_storage), r) for r in facts.host_storage_roles(trigger_type)]
            + [(names.storage_id(account), r) for account in (names.trigger_storage, names.slot_trigger_storage)
               for r in trigger_roles])
    if trigger_type == "blob":
        who = d.principal.object_id if d.principal else None
        if who:
            d.roles("the deploying principal (blob test)", who, d.principal.principal_type,
                    [(names.storage_id(names.slot_trigger_storage), facts.BLOB_TEST_ROLE)])
        else:
            run.plan.notes.append("the signed-in principal's object id is unknown: give it "
                                  f"{facts.BLOB_TEST_ROLE} on {names.slot_trigger_storage} for the blob test")

    prod_desired = d.desired(None, names.trigger_storage)
    prod, prod_created = d.site(None, prod_desired)
    prod_image = ""
    if prod_created:
        prod_settings = prod_desired
    else:
        prod_image = d.container(None, image=None)
        prod_settings = d.app_settings(None, prod_desired)
    d.slot_config_names()
    # Settings swap with the slot (all but the sticky ones): the slot carries production's own settings
    # (e.g. one added by hand), so that a swap never takes them out of production.
    ours = set(prod_desired) | set(sticky_settings(d.project, names)) | {DEPLOYMENT_SETTING}
    carry = {k: v for k, v in prod_settings.items() if k not in ours}

    slot_desired = {**d.desired(slot, names.slot_trigger_storage), **carry}
    slot_site, slot_created = d.site(slot, slot_desired)
    if not slot_created:
        d.app_settings(slot, slot_desired)

    image = d.image.linux_fx_version
    changed = prod_image != image
    if not changed:
        run.plan.changes.append(Change(f"container of {names.app} slot {slot}", "unchanged",
                                       f"production already runs {image}"))
        run.plan.notes.append(f"production already runs {d.image.reference}: nothing to test or swap")
    else:
        d.container(slot, image=image)
        d.stamp(slot, slot_desired, d.image, slot_created=slot_created)
    return SlotDeployment(
        names.subscription_id, names.resource_group, names.app, slot, d.image.reference,
        _host_url(prod), _host_url(slot_site),
        ServiceState.TRANSITIONING if changed else ServiceState.HEALTHY, changed,
        trigger_account_url=_blob_url(names.slot_trigger_storage, d.c.cloud.storage_suffix) if trigger_roles else None,
        plan=run.plan)


def _deployer(project: Project, image: str, options: DeployOptions, credential: TokenCredential, *,
              settings: PipelineSettings | None, dry_run: bool, progress: Progress,
              sleep: Callable[[float], None] | None, clock: Callable[[], float] | None) -> _Deployer:
    parsed = parse_image(image)
    names = resolve_names(project, options)
    run = _make_run(credential, names, settings=settings, dry_run=dry_run, progress=progress,
                    timeout=options.timeout, sleep=sleep, clock=clock)
    interval = settings.polling_interval if settings else 10.0
    return _Deployer(run, project, parsed, options, names, poll_interval=interval)


# ------------------------------------------------------------------------------------------- public API


def plan(project: Project, image: str, options: DeployOptions, *, credential: TokenCredential,
         progress: Progress = _quiet, settings: PipelineSettings | None = None) -> Plan:
    """Dry run: read-only (GET and list) requests only; returns the plan (``plan.render()`` prints it).

    Action step: pass the model repo's project, the ``image`` output of the package step, the inputs as
    DeployOptions and ``credentials.get_credential(tenant_id=..., client_id=...)``.
    """
    if options.hosting_plan == "flex":
        from . import flex

        return flex.deploy_flex(project, options, credential=credential, progress=progress, settings=settings,
                                dry_run=True).plan
    d = _deployer(project, image, options, credential, settings=settings, dry_run=True, progress=progress,
                  sleep=None, clock=None)
    try:
        return _reconcile(d).plan
    finally:
        d.c.close()


def deploy_to_slot(project: Project, image: str, options: DeployOptions, *, credential: TokenCredential,
                   progress: Progress = _quiet, settings: PipelineSettings | None = None,
                   sleep: Callable[[float], None] | None = None,
                   clock: Callable[[], float] | None = None) -> SlotDeployment:
    """Provision idempotently and run ``image`` (``REGISTRY/REPOSITORY@sha256:…``) on the staging slot.

    Returns once the slot is Healthy (running and listing the app's function), or at once with
    ``changed=False`` when production already runs the image. Raises SlotUnhealthy (with ``.deployment``)
    when it does not become healthy within ``options.timeout``; production is untouched either way.
    Action step: pass the result to :func:`test_slot`, then :func:`swap` when the test passed.
    """
    if options.hosting_plan == "flex":
        raise OptionError("Flex Consumption has no deployment slots", field="hosting-plan",
                          hint="use modelfunc.azure.flex.deploy_flex (or `modelfunc deploy --hosting-plan flex`)")
    d = _deployer(project, image, options, credential, settings=settings, dry_run=False, progress=progress,
                  sleep=sleep, clock=clock)
    try:
        deployment = _reconcile(d)
        if not deployment.changed:
            progress(f"production already runs {image}: nothing to deploy")
            return deployment
        return d.wait_healthy(d.names.slot, deployment=deployment)
    finally:
        d.c.close()


def test_slot(project: Project, deployment: SlotDeployment, *, credential: TokenCredential,
              timeout: float | None = None,
              progress: Progress = _quiet, settings: PipelineSettings | None = None) -> Any:
    """The sample's round trip against the slot; returns a blobtest.TestReport.

    Blob trigger: the sample goes to the slot's own trigger storage (``deployment.trigger_account_url``)
    with ``credential`` (no key). HTTP trigger: POST to the slot's URL with its function key (read from
    ARM, never printed). Service Bus: not testable in Azure yet (OptionError: use no-test).
    """
    from ..blobtest import round_trip

    trigger = project.trigger
    answered_by = deployment_id(deployment.image)  # only an answer from this image counts
    if timeout is None:
        timeout = facts.azure_test_timeout(trigger.type, getattr(trigger, "source", None))
        progress(f"    waiting up to {timeout:.0f} s for the answer (the {trigger.type} trigger's documented latency; "
                 "--test-timeout changes it)")
    if trigger.type == "blob":
        return round_trip(project, account_url=deployment.trigger_account_url, credential=credential,
                          timeout=timeout, progress=progress, deployment=answered_by)
    if trigger.type == "http":
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
        return round_trip(project, url=f"{deployment.slot_url}/api/{trigger.route}", function_key=key,
                          timeout=timeout, progress=progress, deployment=answered_by)
    raise OptionError("a Service Bus trigger cannot be round-tripped in Azure yet (no test queue is provisioned)",
                      field="no-test", hint="pass --no-test (the image's self-test still ran) or --no-swap")


def swap(deployment: SlotDeployment, *, credential: TokenCredential, progress: Progress = _quiet,
         settings: PipelineSettings | None = None, timeout: float = 900.0) -> SlotDeployment:
    """Swap the slot into production and check production now runs the image. Call only after the test passed.

    Action step: pass the SlotDeployment from :func:`deploy_to_slot` (the same process) or rebuild one
    from its ``summary()`` fields.
    """
    if deployment.slot is None:
        raise OptionError("this deployment has no slot to swap", field="slot-name")
    clients = Clients(credential, deployment.subscription_id, settings or PipelineSettings())
    run = Run(clients, progress=progress, timeout=timeout)
    try:
        web = clients.web.web_apps
        what = f"swap {deployment.app_name} slot {deployment.slot} into production"
        run.step(what, "update", lambda: run.wait(web.begin_swap_slot_with_production(
            deployment.resource_group, deployment.app_name,
            CsmSlotEntity(target_slot=deployment.slot, preserve_vnet=True)), what))
        with arm_call(f"read the container of {deployment.app_name}"):
            config = web.get_configuration(deployment.resource_group, deployment.app_name)
        expected = f"DOCKER|{deployment.image}"
        if (config.linux_fx_version or "") != expected:
            deployment.state = ServiceState.FAILED
            raise DeployError(f"after the swap production runs {config.linux_fx_version!r}, not {expected!r}",
                              hint="look at the app's activity log; deploy again to retry")
        deployment.swapped = True
        deployment.state = ServiceState.HEALTHY
        progress(f"    production now runs {deployment.image}")
        return replace(deployment)
    finally:
        clients.close()


@dataclass
class DeployResult:
    deployment: SlotDeployment | None
    plan: Plan
    report: Any = None  # the blobtest.TestReport, when the test ran

    @property
    def passed(self) -> bool:
        return self.report is None or bool(self.report.passed)


BlobTest = Callable[[Project, SlotDeployment], Any]


def deploy(project: Project, image: str, options: DeployOptions, *, credential: TokenCredential,
           progress: Progress = _quiet, settings: PipelineSettings | None = None, dry_run: bool = False,
           blob_test: BlobTest | None = None, sleep: Callable[[float], None] | None = None,
           clock: Callable[[], float] | None = None) -> DeployResult:
    """The whole Azure target: deploy to the slot, test it, swap when the test passed (see the module docstring).

    ``blob_test(project, deployment) -> TestReport`` replaces :func:`test_slot` (tests inject one). A failed
    test returns the result with ``passed`` False and production unchanged; the caller reports it.
    """
    if dry_run:
        return DeployResult(None, plan(project, image, options, credential=credential, progress=progress,
                                       settings=settings))
    if options.hosting_plan == "flex":
        from . import flex

        deployment = flex.deploy_flex(project, options, credential=credential, progress=progress,
                                      settings=settings, sleep=sleep, clock=clock)
        report = None
        if options.run_test and deployment.changed:
            report = (blob_test or _default_test(credential, options, settings, progress))(project, deployment)
        return DeployResult(deployment, deployment.plan, report)
    deployment = deploy_to_slot(project, image, options, credential=credential, progress=progress,
                                settings=settings, sleep=sleep, clock=clock)
    if not deployment.changed:
        return DeployResult(deployment, deployment.plan)
    report = None
    if options.run_test:
        progress(f"==> test the sample on {deployment.slot_url}")
        report = (blob_test or _default_test(credential, options, settings, progress))(project, deployment)
        if not report.passed:
            progress(f"    the test failed: production stays on its previous image ({deployment.app_url})")
            return DeployResult(deployment, deployment.plan, report)
    if options.no_swap:
        progress(f"    --no-swap: {deployment.slot_url} runs {image}; production is unchanged")
        return DeployResult(deployment, deployment.plan, report)
    progress(f"==> swap {deployment.slot} into production")
    deployment = swap(deployment, credential=credential, progress=progress, settings=settings,
                      timeout=options.timeout)
    deployment.plan.changes.append(Change(f"swap {deployment.slot} -> production", "update"))
    return DeployResult(deployment, deployment.plan, report)


def _default_test(credential: TokenCredential, options: DeployOptions, settings: PipelineSettings | None,
                  progress: Progress) -> BlobTest:
    def run(project: Project, deployment: SlotDeployment) -> Any:
        return test_slot(project, deployment, credential=credential, timeout=options.test_timeout,
                         progress=progress, settings=settings)

    return run
