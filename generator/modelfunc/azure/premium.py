"""The premium-container path: the image (by digest) on the staging slot of an Elastic Premium (or Dedicated)
app, the test against the slot, and the swap into production.

Identity everywhere, in this order: one user-assigned identity is created first and given its roles (AcrPull
on the registry, the storage roles the Functions docs list — see :mod:`.facts`) before any site exists;
production and the slot are created with that identity and ``acrUseManagedIdentityCreds`` /
``acrUserManagedIdentityID`` on the empty Functions base image, and only then does the slot get the
registry image (``linuxFxVersion``). Identities do not move with a swap, so one identity for both slots keeps
both sides' rights through it. No registry password, storage key or connection string is created or stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from azure.core.credentials import TokenCredential
from azure.mgmt.web.models import (
    CsmSlotEntity,
    ManagedServiceIdentity,
    NameValuePair,
    Site,
    SiteConfig,
    SiteConfigResource,
    SlotConfigNamesResource,
)

from ..config import Project
from ..errors import DeployError, OptionError
from ..progress import Progress, quiet
from ..runtime.modelfunc_runtime import DEPLOYMENT_SETTING
from . import facts, servicebus
from .clients import Clients, PipelineSettings, arm_call
from .clients import read_or_none as _get
from .options import SKUS, DeployOptions, Image, Names, parse_image, resolve_names
from .plan import Change, Plan, Run
from .results import ServiceState, SlotDeployment, deployment_id
from .verbs import Deployer, blob_url, host_url, make_run, trigger_settings

SITE_KIND = "functionapp,linux,container"
UNKNOWN_CLIENT_ID = "(the identity's client id, once created)"


def desired_settings(project: Project, names: Names, trigger_account: str, options: DeployOptions, *,
                     client_id: str | None, storage_suffix: str, registry: str | None = None,
                     slot: str | None = None, bus_namespace: str | None = None) -> dict[str, str]:
    """The app settings modelfunc owns for one slot (identity-based connections; Redis only when given).

    ``client_id`` is the user-assigned identity's; ``storage_suffix`` the cloud's; ``registry`` the login
    server the image comes from; ``slot`` None is production; ``bus_namespace`` that slot's Service Bus
    namespace host (a service-bus-queue app; None before it exists).
    """
    client = client_id or UNKNOWN_CLIENT_ID
    settings = {
        "FUNCTIONS_EXTENSION_VERSION": "~4",
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "WEBSITES_ENABLE_APP_SERVICE_STORAGE": "false",
        **facts.host_storage_settings(names.host_storage, storage_suffix),
        **facts.identity_connection(facts.HOST_STORAGE, client),
        # A new one for a new site; an existing site keeps its own (see Deployer.app_settings).
        facts.MACHINE_KEY_SETTING: facts.new_machine_key(),
    }
    if registry:
        settings[facts.REGISTRY_URL_SETTING] = f"https://{registry}"
    connection = project.trigger.connection
    if connection is not None:  # the trigger's own account (or namespace), by the user-assigned identity
        settings.update(trigger_settings(project, trigger_account, storage_suffix, bus_namespace))
        settings.update(facts.identity_connection(connection, client))
    if names.slot and facts.host_ids_collide(names.app, names.slot):
        settings[facts.HOST_ID_SETTING] = facts.explicit_host_id(names.app, slot)
    cache = project.config.cache
    if cache is not None and cache.redis is not None and options.redis_connection_string:
        settings[cache.redis.connection] = options.redis_connection_string
    return settings


def sticky_settings(project: Project, names: Names) -> list[str]:
    """Settings that stay with their slot on a swap: each slot listens to its own trigger storage (or Service Bus
    namespace), and keeps its own host ID when the derived ones would collide (see
    :func:`facts.host_ids_collide`)."""
    sticky = [facts.MACHINE_KEY_SETTING, *project.trigger.slot_settings]
    if names.slot and facts.host_ids_collide(names.app, names.slot):
        sticky.append(facts.HOST_ID_SETTING)
    return sticky


def plan_sku(options: DeployOptions) -> tuple[str, str, str]:
    """The app service plan's SKU name, tier and kind for ``options.sku`` (Elastic Premium or Dedicated)."""
    sku_name = options.sku.upper()
    tier = SKUS[sku_name]
    return sku_name, tier, "elastic" if tier == "ElasticPremium" else "linux"


@dataclass
class PremiumDeployer(Deployer):
    """The verbs of the premium-container path: the registry, the sites and slot, their containers, the stamp."""

    image: Image = field(kw_only=True)
    registry_id: str | None = None

    def preflight(self) -> None:
        super().preflight()
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
        current = self.read(web.web_apps.get, web.web_apps.get_slot, slot, what=name)
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
        config = self.read(web.web_apps.get_configuration, web.web_apps.get_configuration_slot, slot, what=name)
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

    def desired(self, slot: str | None, trigger_account: str, bus_namespace: str | None = None) -> dict[str, str]:
        return desired_settings(self.project, self.names, trigger_account, self.options, client_id=self.client_id,
                                storage_suffix=self.c.cloud.storage_suffix, registry=self.image.registry, slot=slot,
                                bus_namespace=bus_namespace)

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


def reconcile(d: PremiumDeployer) -> SlotDeployment:
    """Provision (or plan) everything for a premium-container app and put the image on the slot.

    The order matters on a first deploy: the identity and its roles exist before any site that uses them;
    the sites are created with their settings, the identity and the ACR flags on the empty base image; the
    slot gets the registry image last.
    """
    names, run = d.names, d.run
    slot = names.slot
    assert slot is not None and names.slot_trigger_storage is not None
    trigger = d.project.trigger
    d.preflight()
    bus = bool(trigger.queues)  # a Service Bus namespace per side
    namespaces = servicebus.preflight(d) if bus else {}
    d.resource_group()
    d.identity()
    d.storage_account(names.host_storage, list(trigger.host_containers))
    if trigger.has_storage:  # trigger storage: the trigger's own account, one per side
        d.storage_account(names.trigger_storage, list(trigger.containers))
        d.storage_account(names.slot_trigger_storage, list(trigger.containers))
    d.plan_resource(*plan_sku(d.options))
    hosts = {namespace: servicebus.ensure_namespace(d, namespace, current) for namespace, current in namespaces.items()}

    trigger_roles = facts.BLOB_TRIGGER_ROLES if trigger.has_storage else ()
    # One identity for both slots: each slot's settings name its own trigger account, and the identity may
    # use both, so neither side loses access when a swap moves the settings.
    d.roles(f"identity {names.identity}", d.identity_principal_id, "ServicePrincipal",
            [(d.registry_id or "", facts.ACR_PULL)]
            + [(names.storage_id(names.host_storage), r) for r in facts.host_storage_roles(trigger)]
            + [(names.storage_id(account), r) for account in (names.trigger_storage, names.slot_trigger_storage)
               for r in trigger_roles]
            + (servicebus.app_roles(names) if bus else []))
    test_roles = ([(names.storage_id(names.slot_trigger_storage), facts.BLOB_TEST_ROLE)] if trigger.has_storage
                  else []) + (servicebus.test_roles(names, names.slot_bus_namespace) if bus else [])
    if test_roles:
        who = d.principal.object_id if d.principal else None
        if who:
            d.roles(f"the deploying principal ({trigger.type} test)", who, d.principal.principal_type, test_roles)
        else:
            run.plan.notes.append("the signed-in principal's object id is unknown: give it " + ", ".join(
                f"{role} on {scope.rsplit('/', 1)[-1]}" for scope, role in test_roles) + " for the test")

    prod_desired = d.desired(None, names.trigger_storage, hosts.get(names.bus_namespace))
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

    slot_desired = {**d.desired(slot, names.slot_trigger_storage, hosts.get(names.slot_bus_namespace)), **carry}
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
        host_url(prod), host_url(slot_site),
        ServiceState.TRANSITIONING if changed else ServiceState.HEALTHY, changed,
        trigger_account_url=blob_url(names.slot_trigger_storage, d.c.cloud.storage_suffix) if trigger_roles else None,
        plan=run.plan, bus_namespace=hosts.get(names.slot_bus_namespace),
        stamps_account_url=blob_url(names.host_storage, d.c.cloud.storage_suffix) if bus else None)


def _deployer(project: Project, image: str, options: DeployOptions, credential: TokenCredential, *,
              settings: PipelineSettings | None, dry_run: bool, progress: Progress,
              sleep: Callable[[float], None] | None, clock: Callable[[], float] | None) -> PremiumDeployer:
    parsed = parse_image(image)
    names = resolve_names(project, options)
    run = make_run(credential, names, settings=settings, dry_run=dry_run, progress=progress,
                   timeout=options.timeout, sleep=sleep, clock=clock)
    interval = settings.polling_interval if settings else 10.0
    return PremiumDeployer(run, project, options, names, image=parsed, poll_interval=interval)


def plan(project: Project, image: str, options: DeployOptions, *, credential: TokenCredential,
         progress: Progress = quiet, settings: PipelineSettings | None = None) -> Plan:
    """:func:`modelfunc.azure.deploy.plan` of a premium-container app: read-only requests only."""
    d = _deployer(project, image, options, credential, settings=settings, dry_run=True, progress=progress,
                  sleep=None, clock=None)
    try:
        return reconcile(d).plan
    finally:
        d.c.close()


def deploy_to_slot(project: Project, image: str, options: DeployOptions, *, credential: TokenCredential,
                   progress: Progress = quiet, settings: PipelineSettings | None = None,
                   sleep: Callable[[float], None] | None = None,
                   clock: Callable[[], float] | None = None) -> SlotDeployment:
    """:func:`modelfunc.azure.deploy.deploy_to_slot` of a premium-container app (the hosting plan with slots)."""
    d = _deployer(project, image, options, credential, settings=settings, dry_run=False, progress=progress,
                  sleep=sleep, clock=clock)
    try:
        deployment = reconcile(d)
        if not deployment.changed:
            progress(f"production already runs {image}: nothing to deploy")
            return deployment
        return d.wait_healthy(d.names.slot, deployment=deployment)
    finally:
        d.c.close()


def swap(deployment: SlotDeployment, *, credential: TokenCredential, progress: Progress = quiet,
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
