"""Deploy options, checked before any Azure call, and the names of everything modelfunc creates.

A bad option is an :class:`OptionError` whose ``field`` is the option (the CLI's ``--name`` and the
action's ``name`` input are spelled the same), with the rule and an example.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from ..config import APP_NAME_RE, Project
from ..errors import OptionError
from . import facts
from .facts import TIERS_WITH_SLOTS

TAG = "modelfunc-app"
HOSTING_PLANS = ("premium-container", "flex")
DIGEST_RE = re.compile(
    r"(?P<registry>[A-Za-z0-9.-]+(?::\d+)?)/(?P<repository>[a-z0-9._/-]+)@sha256:(?P<hex>[0-9a-f]{64})")
APP_RE = APP_NAME_RE  # the function app's name rule: written once, in config
RG_RE = re.compile(r"[-\w._()]{1,89}[-\w_()]")
SLOT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")
PREFIX_RE = re.compile(r"[a-z0-9]{3,20}")
LOCATION_RE = re.compile(r"[a-z0-9]+")
SKUS = {"EP1": "ElasticPremium", "EP2": "ElasticPremium", "EP3": "ElasticPremium",
        "P1V3": "PremiumV3", "P2V3": "PremiumV3", "P3V3": "PremiumV3",
        "P0V3": "PremiumV3", "B1": "Basic", "B2": "Basic", "B3": "Basic", "S1": "Standard"}
FLEX_SKU = ("FC1", "FlexConsumption")


@dataclass(frozen=True)
class DeployOptions:
    """What to deploy where. Only ``subscription_id`` is required; the rest have defaults from the app name.

    ``redis_connection_string`` is a secret: it is written to the app setting named by ``cache.redis``
    and never printed (plans show it masked).
    """

    subscription_id: str
    app_name: str | None = None
    resource_group: str | None = None
    location: str | None = None
    registry: str | None = None  # login server, registry name or resource id; default: the image's host
    slot_name: str = "staging"
    hosting_plan: Literal["premium-container", "flex"] = "premium-container"
    sku: str = "EP1"
    storage_prefix: str | None = None
    no_swap: bool = False
    run_test: bool = True
    timeout: float = 900.0
    test_timeout: float | None = None  # None: by the trigger's documented latency (facts.azure_test_timeout)
    redis_connection_string: str | None = None


@dataclass(frozen=True)
class Image:
    reference: str
    registry: str
    repository: str
    digest: str

    @property
    def linux_fx_version(self) -> str:
        return f"DOCKER|{self.reference}"


def parse_image(reference: str) -> Image:
    m = DIGEST_RE.fullmatch(reference or "")
    if not m:
        raise OptionError(f"{reference!r} is not an image by digest", field="image",
                          hint="deploy by digest, never by a mutable tag: REGISTRY/REPOSITORY@sha256:<64 hex>, "
                               "e.g. what `modelfunc package --repository myreg.azurecr.io/scorer` printed")
    return Image(reference, m["registry"].lower(), m["repository"], f"sha256:{m['hex']}")


@dataclass(frozen=True)
class Names:
    """Every name modelfunc uses in Azure for one app (all tagged ``modelfunc-app: <app>``)."""

    subscription_id: str
    app: str
    resource_group: str
    plan: str
    host_storage: str
    trigger_storage: str  # a blob app's trigger account (created for a blob trigger only)
    slot_trigger_storage: str | None  # the slot's own trigger account: a slot must never consume production blobs
    slot: str | None
    location: str | None

    @property
    def tags(self) -> dict[str, str]:
        return {TAG: self.app}

    @property
    def bus_namespace(self) -> str:
        """Production's Service Bus namespace (a service-bus-queue app): its input and output queues."""
        return f"bus-{self.host_storage.removesuffix('host')}"

    @property
    def slot_bus_namespace(self) -> str | None:
        """The slot's own namespace, with queues of the same names: a slot never consumes production's messages,
        and the app's code (its queue names) is the same on both sides of a swap."""
        return f"{self.bus_namespace}-stag" if self.slot else None

    @property
    def identity(self) -> str:
        """The app's user-assigned identity: created first, shared by production and its slot."""
        return f"{self.app}-id"

    # ARM ids of what lives in the app's resource group.
    @property
    def rg_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    def in_group(self, resource_type: str, name: str) -> str:
        """``resource_type``: the provider namespace and type, e.g. ``Microsoft.Web/serverfarms``."""
        return f"{self.rg_id}/providers/{resource_type}/{name}"

    def storage_id(self, account: str) -> str:
        return self.in_group("Microsoft.Storage/storageAccounts", account)

    def bus_namespace_id(self, namespace: str) -> str:
        return self.in_group("Microsoft.ServiceBus/namespaces", namespace)

    @property
    def plan_id(self) -> str:
        return self.in_group("Microsoft.Web/serverfarms", self.plan)

    @property
    def identity_id(self) -> str:
        return self.in_group("Microsoft.ManagedIdentity/userAssignedIdentities", self.identity)


def _default_prefix(subscription_id: str, resource_group: str, app: str) -> str:
    # Storage account names are global: the app's letters plus a short hash of where it lives.
    letters = re.sub(r"[^a-z0-9]", "", app.lower())[:14] or "mf"
    digest = hashlib.sha256(f"{subscription_id}/{resource_group}/{app}".lower().encode()).hexdigest()[:6]
    return letters + digest


def resolve_names(project: Project, options: DeployOptions) -> Names:
    """Check every option and derive the names; raises OptionError naming the option."""
    if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", options.subscription_id or ""):
        raise OptionError(f"{options.subscription_id!r} is not a subscription id", field="subscription-id",
                          hint="the subscription's GUID, e.g. 00000000-0000-0000-0000-000000000000 "
                               "(`az account show --query id`), or set AZURE_SUBSCRIPTION_ID")
    app = options.app_name or project.name
    if not APP_RE.fullmatch(app):
        raise OptionError(f"{app!r} is not a valid function app name: 2-60 letters, digits and hyphens, not "
                          "starting or ending with a hyphen", field="app-name", hint="e.g. diabetes-scorer")
    rg = options.resource_group or f"{app}-rg"
    if not RG_RE.fullmatch(rg):
        raise OptionError(f"{rg!r} is not a valid resource group name: 1-90 letters, digits, '-', '_', '.', "
                          "'(', ')', not ending with '.'", field="resource-group", hint="e.g. scorers-rg")
    if options.hosting_plan not in HOSTING_PLANS:
        raise OptionError(f"{options.hosting_plan!r} is not a hosting plan; use one of: {', '.join(HOSTING_PLANS)}",
                          field="hosting-plan")
    if options.hosting_plan == "premium-container" and options.sku.upper() not in SKUS:
        raise OptionError(f"{options.sku!r} is not a Linux plan SKU that runs containers; use one of: "
                          f"{', '.join(SKUS)}", field="sku", hint="EP1 (Elastic Premium) is the default")
    if options.hosting_plan == "premium-container" and SKUS[options.sku.upper()] not in TIERS_WITH_SLOTS:
        raise OptionError(f"{options.sku!r} is a {SKUS[options.sku.upper()]} plan, which has no deployment slots: "
                          "modelfunc tests every image on a slot before it reaches production", field="sku",
                          hint="choose a Standard, Premium or Elastic Premium SKU (S1, P0v3, EP1 ...)")
    slot = options.slot_name
    if options.hosting_plan == "flex":
        slot = None  # Flex Consumption has no deployment slots
    elif not SLOT_RE.fullmatch(slot or "") or slot.lower() == "production":
        raise OptionError(f"{slot!r} is not a valid slot name: letters, digits and hyphens, not 'production'",
                          field="slot-name", hint="e.g. staging")
    prefix = options.storage_prefix or _default_prefix(options.subscription_id, rg, app)
    if not PREFIX_RE.fullmatch(prefix):
        raise OptionError(f"{prefix!r} is not a valid storage prefix: 3-20 lower-case letters and digits "
                          "(storage account names are the prefix plus 'host', 'trig', 'stag'; a Service Bus app's "
                          "namespaces bus-<prefix> and bus-<prefix>-stag)",
                          field="storage-prefix", hint="e.g. diabetesprod")
    assert facts.bus_namespace_name_ok(f"bus-{prefix}-stag")  # the prefix's rule keeps namespace names valid
    if options.location is not None and not LOCATION_RE.fullmatch(options.location):
        raise OptionError(f"{options.location!r} is not an Azure location name", field="location",
                          hint="lower case without spaces, e.g. westeurope (`az account list-locations -o table`)")
    if options.timeout <= 0:
        raise OptionError(f"{options.timeout!r} is not a positive number of seconds", field="timeout")
    return Names(options.subscription_id, app, rg, f"{app}-plan", f"{prefix}host", f"{prefix}trig",
                 f"{prefix}stag" if slot else None, slot, options.location)
