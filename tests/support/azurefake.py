"""A small model of Azure Resource Manager state behind a real azure-core RequestsTransport.

Only the socket is replaced: a requests adapter mounted on the transport's session answers every
request from :class:`FakeArm` and records it. Everything between the SDK and HTTP (serialisation,
pipeline policies, retries, LRO polling) is the real azure-core / azure-mgmt code.

The model: PUT stores a resource (with what ARM adds: id, name, provisioningState, an identity's
principalId, a site's state and host name), PATCH merges, GET returns it or 404, DELETE removes it
and its children, list paths return the children, POST list actions answer stored data, and long
operations answer 202 + Location that completes on the next poll. Sites list the functions of an
image when the test says which image provides them (``arm.image_functions``).

Facts from Microsoft's references (tests/support/azure_reference.py) are enforced, not assumed: role definitions are
listed by name and a role assignment naming an id that is no built-in role answers 400
RoleDefinitionDoesNotExist; a slot on a plan tier without slots (Basic) is refused; a Flex Consumption site
refuses ``siteConfig.ftpsState``. App settings sent in a site's create request become its settings.
OneDeploy on a Flex app's Kudu host answers 202 + Location + the deployment id, and the deployment moves from
Building to its outcome (``kudu_outcomes``); an Event Grid webhook subscription is refused "Url validation" while
the blobs extension endpoint is down (``webhook_down``) or the URL's key is not the app's (facts.py has the sources).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from requests.structures import CaseInsensitiveDict

from support.azure_reference import (
    BUILTIN_ROLES,
    SERVICE_BUS_NAME_LENGTH,
    SERVICE_BUS_RESERVED_ENDINGS,
    TIERS_WITHOUT_SLOTS,
)

SUB = "11111111-2222-3333-4444-555555555555"
REGISTRY_ID = f"/subscriptions/{SUB}/resourceGroups/shared-rg/providers/Microsoft.ContainerRegistry/registries/myreg"
STORAGE_KEY = "c2VjcmV0LXN0b3JhZ2Uta2V5LW5ldmVyLXByaW50ZWQ="  # what listKeys answers: must never be printed
ASYNC_TYPES = ("microsoft.storage/storageaccounts", "microsoft.web/serverfarms")
READ_POSTS = ("/list", "/listkeys", "/checknameavailability")  # POSTs that only read
BLOBS_KEY = "blobs-extension-key-SECRET-1414"  # the system key in an Event Grid webhook URL: never printed
REGISTRY_PASSWORD = "acr-admin-password-SECRET-2718"  # the registry's admin password (listCredentials): never printed


@dataclass
class Req:
    method: str
    path: str  # URL path, as sent (case kept)
    query: dict[str, str]
    body: Any
    host: str
    authorization: str = ""  # the Authorization header as sent (tests check its scheme, never print it)

    @property
    def mutating(self) -> bool:
        if self.method in ("PUT", "PATCH", "DELETE"):
            return True
        return self.method == "POST" and not self.path.lower().endswith(READ_POSTS)

    def short(self) -> tuple[str, str]:
        """(method, path without /subscriptions/<sub>) for readable sequence assertions."""
        return self.method, self.path.replace(f"/subscriptions/{SUB}", "")


def _fake_jwt(claims: dict[str, Any]) -> str:
    def enc(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{enc({'alg': 'none'})}.{enc(claims)}.c2lnbmF0dXJl"


DEPLOYER_OID = "99999999-0000-0000-0000-000000000001"
TOKEN = _fake_jwt({"oid": DEPLOYER_OID, "idtyp": "app", "appid": "a", "tid": "t", "secret": "tok-SECRET-4711"})


class FakeCredential:
    """The test's stand-in for Azure AD: a token with claims (it is a secret: never printed)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0
        self.scopes: list[tuple[str, ...]] = []  # what each token was asked for

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        self.scopes.append(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(TOKEN, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        self.scopes.append(scopes)
        if self.error is not None:
            raise self.error
        return AccessTokenInfo(TOKEN, int(time.time()) + 3600)


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


def _type_of(path: str) -> str:
    """'microsoft.web/sites' for .../providers/Microsoft.Web/sites/x (the last provider segment pair)."""
    parts = path.strip("/").split("/")
    low = [p.lower() for p in parts]
    if "providers" not in low:
        return "microsoft.resources/resourcegroups" if len(parts) == 4 else ""
    i = len(low) - 1 - low[::-1].index("providers")
    rest = parts[i + 1:]
    kind = [rest[0]] + [rest[j] for j in range(1, len(rest), 2)]
    return "/".join(kind).lower()


class FakeArm:
    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.requests: list[Req] = []
        self.sleeps: list[float] = []
        self.faults: list[tuple[str, str, int, dict[str, str]]] = []  # method, path part, status, headers
        self.operations: dict[str, tuple[int, Any]] = {}
        self.image_functions: dict[str, list[str]] = {}
        self.aad_forms: list[dict[str, list[str]]] = []
        self.published: dict[str, bytes] = {}  # app name -> the zip deployed to it
        self.zip_functions: list[str] = []  # what a zip-deployed app lists once published
        # Kudu's deployments (OneDeploy on a Flex app's scm host): id -> record; a record moves from Building to its
        # outcome on the next poll. Outcomes queue per publish: (status, status_text); none queued: success.
        self.kudu: dict[str, dict[str, Any]] = {}
        self.kudu_outcomes: list[tuple[int, str]] = []
        self.scm_faults: list[int] = []  # statuses POST /api/publish answers first (e.g. 403 while roles propagate)
        self.webhook_down = 0  # event subscription creates whose validation handshake fails (endpoint not up yet)
        self.restarts: list[str] = []  # sites restarted (POST .../restart)
        self.names_taken_elsewhere: set[str] = set()  # global names (registry, storage, site) held by others
        # What ARM's function list shows per site: a cache the host fills when it starts (create, restart) or
        # when asked (POST syncfunctiontriggers), not live: after an image change it still names the old one's.
        self.listed_image: dict[str, str] = {}
        self.syncs: list[str] = []  # sites asked to sync their triggers
        self.add(f"/subscriptions/{SUB}/resourceGroups/shared-rg", {"location": "westeurope"})
        self.add(REGISTRY_ID, {"location": "westeurope",
                               "properties": {"loginServer": "myreg.azurecr.io", "adminUserEnabled": True}})

    # ---------------------------------------------------------------- test helpers

    def transport(self) -> RequestsTransport:
        session = requests.Session()
        session.mount("https://", _Adapter(self))
        session.mount("http://", _Adapter(self))  # e.g. the managed identity endpoint: nothing leaves the test
        arm = self

        class Transport(RequestsTransport):
            def sleep(self, duration: float) -> None:  # retries and LRO polls: recorded, never slept
                arm.sleeps.append(duration)

            def close(self) -> None:  # shared by every client of a test: the test ends it
                pass

            def __exit__(self, *args: Any) -> None:
                pass

        return Transport(session=session)

    def add(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resource = self._enrich(path, copy.deepcopy(body))
        self.store[path.lower()] = resource
        return resource

    def get(self, path: str) -> dict[str, Any] | None:
        return self.store.get(path.lower())

    def fail(self, method: str, path_part: str, status: int, times: int = 1, **headers: str) -> None:
        self.faults += [(method, path_part.lower(), status, headers)] * times

    def hosts(self) -> set[str]:
        return {r.host for r in self.requests}

    def mutating(self) -> list[Req]:
        return [r for r in self.requests if r.mutating and r.host == "management.azure.com"]

    def arm_requests(self) -> list[Req]:
        return [r for r in self.requests if r.host == "management.azure.com"]

    # ---------------------------------------------------------------- the model

    def _enrich(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        body["id"] = path
        body["name"] = parts[-1]
        kind = _type_of(path)
        body.setdefault("type", kind)
        props = body.setdefault("properties", {})
        if kind in ("microsoft.resources/resourcegroups", "microsoft.storage/storageaccounts",
                    "microsoft.web/serverfarms", "microsoft.web/sites", "microsoft.web/sites/slots"):
            props["provisioningState"] = "Succeeded"
        identity = body.get("identity")
        if isinstance(identity, dict) and "SystemAssigned" in str(identity.get("type")):
            identity.setdefault("principalId", str(uuid.uuid4()))
            identity.setdefault("tenantId", "t")
        if isinstance(identity, dict):
            for uami_id, entry in (identity.get("userAssignedIdentities") or {}).items():
                uami = self.store.get(uami_id.lower(), {}).get("properties", {})
                if isinstance(entry, dict) and uami:
                    entry.update(principalId=uami["principalId"], clientId=uami["clientId"])
        if kind == "microsoft.managedidentity/userassignedidentities":
            props.setdefault("principalId", str(uuid.uuid4()))
            props.setdefault("clientId", str(uuid.uuid4()))
            props.setdefault("tenantId", "t")
        if kind in ("microsoft.web/sites", "microsoft.web/sites/slots"):
            props.setdefault("state", "Running")
            host = parts[7] + (f"-{parts[9]}" if kind.endswith("slots") else "")
            props.setdefault("defaultHostName", f"{host}.azurewebsites.net")
            site = self.store.get(path.lower().split("/slots/")[0], {}) if kind.endswith("slots") else body
            farm_id = props.get("serverFarmId") or site.get("properties", {}).get("serverFarmId") or ""
            tier = (self.store.get(farm_id.lower(), {}).get("sku") or {}).get("tier")
            if tier:  # ARM shows the plan's tier on the site, read-only (az reads it to tell Flex apart)
                props["sku"] = tier
        if kind == "microsoft.servicebus/namespaces":  # Namespaces - Create Or Update (REST reference)
            props.update(provisioningState="Succeeded", status="Active")
            props.setdefault("serviceBusEndpoint", f"https://{parts[-1]}.servicebus.windows.net:443/")
        if kind == "microsoft.servicebus/namespaces/queues":
            props.setdefault("status", "Active")
        if kind == "microsoft.containerregistry/registries":
            props.setdefault("loginServer", f"{parts[-1].lower()}.azurecr.io")
            props.setdefault("provisioningState", "Succeeded")
        if kind == "microsoft.storage/storageaccounts":
            props.setdefault("primaryEndpoints", {  # a StorageV2 account has all four services (az checks them)
                service: f"https://{parts[-1]}.{service}.core.windows.net/" for service in ("blob", "queue", "table",
                                                                                             "file")})
        if kind.startswith("microsoft.eventgrid/"):
            props["provisioningState"] = "Succeeded"
            dest = props.get("destination", {}).get("properties", {})
            if "endpointUrl" in dest:  # ARM never returns the URL (it holds a key), only its base
                dest["endpointBaseUrl"] = dest.pop("endpointUrl").split("?")[0]
        if kind == "microsoft.authorization/roleassignments":
            props["scope"] = path.lower().split("/providers/microsoft.authorization/")[0]
        return body

    def _children(self, path: str, kind: str | None = None) -> list[dict[str, Any]]:
        prefix = path.lower().rstrip("/") + "/"
        depth = prefix.count("/")
        out = []
        for key, value in self.store.items():
            if key.startswith(prefix) and (kind is None or value.get("type") == kind):
                if kind is None and key.count("/") != depth:
                    continue
                out.append(value)
        return out

    def _site_of(self, path: str) -> str:
        m = re.match(r"(.*/providers/microsoft\.web/sites/[^/]+(?:/slots/[^/]+)?)", path.lower())
        assert m, path
        return m.group(1)

    def _sync(self, site: str) -> None:
        self.listed_image[site] = self.store.get(f"{site}/config/web", {}).get("properties", {}).get(
            "linuxFxVersion", "")

    def _functions(self, site: str) -> list[dict[str, Any]]:
        config = self.store.get(f"{site}/config/web", {}).get("properties", {})
        image = self.listed_image.get(site, config.get("linuxFxVersion", ""))
        names = self.image_functions.get(image.split("|", 1)[-1], [])
        app = site.split("/sites/")[1].split("/")[0]
        if app in self.published and "/slots/" not in site:
            names = self.zip_functions
        return [{"id": f"{site}/functions/{n}", "name": f"{app}/{n}", "properties": {"name": n}} for n in names]

    def _swap(self, site: str, slot: str) -> None:
        slot_path = f"{site}/slots/{slot.lower()}"
        sticky = set(self.store.get(f"{site}/config/slotconfignames", {}).get("properties", {})
                     .get("appSettingNames") or [])
        a = self.store.setdefault(f"{site}/config/web", {"properties": {}})["properties"]
        b = self.store.setdefault(f"{slot_path}/config/web", {"properties": {}})["properties"]
        a["linuxFxVersion"], b["linuxFxVersion"] = b.get("linuxFxVersion"), a.get("linuxFxVersion")
        sa = self.store.setdefault(f"{site}/config/appsettings", {"properties": {}})["properties"]
        sb = self.store.setdefault(f"{slot_path}/config/appsettings", {"properties": {}})["properties"]
        for name in set(sa) | set(sb):
            if name in sticky:
                continue
            va, vb = sa.pop(name, None), sb.pop(name, None)
            if vb is not None:
                sa[name] = vb
            if va is not None:
                sb[name] = va
        self._sync(site)  # both restart on their new configuration
        self._sync(slot_path)

    def handle(self, method: str, url: str, body: bytes | None,
               headers: Any = None) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(url)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                data = parse_qs(body.decode()) if parts.hostname == "login.microsoftonline.com" else body
        self.requests.append(Req(method, path, query, data, parts.hostname or "",
                                 (headers or {}).get("Authorization", "")))
        if parts.hostname == "login.microsoftonline.com":
            return self._aad(method, path, data)
        if (parts.hostname or "").endswith(".scm.azurewebsites.net"):
            return self._scm(method, path, parts.hostname.split(".")[0], data)
        for i, (m, part, status, headers) in enumerate(self.faults):
            if m == method and part in path.lower():
                del self.faults[i]
                return status, headers, {"error": {"code": "Injected", "message": f"injected {status}"}}
        low = path.lower()
        if low.startswith("/fake-operations/"):
            status, final = self.operations[low.rsplit("/", 1)[-1]]
            return 200, {}, final
        cli = self._cli(method, path, low, query, data)  # what the Azure CLI asks beyond modelfunc
        if cli is not None:
            return cli
        if method == "GET":
            return self._get(low, query)
        if method == "PUT":
            return self._put(path, data or {})
        if method == "PATCH":
            if low.endswith("/config/web") and self._site_of(low) in self.store:
                self.store.setdefault(low, {"id": path, "properties": {}})  # a site always has its config
            current = self.store.get(low)
            if current is None:
                return 404, {}, {"error": {"code": "ResourceNotFound", "message": f"{path} not found"}}
            _merge(current, data or {})
            return 200, {}, current
        if method == "DELETE":
            existed = low in self.store
            for key in [k for k in self.store if k == low or k.startswith(low + "/")]:
                del self.store[key]
            if existed and _type_of(low) == "microsoft.web/sites":  # the app's Kudu (and what it deployed) goes too
                self.published.pop(low.rsplit("/", 1)[-1], None)
            return (200 if existed else 204), {}, None
        if method == "POST":
            return self._post(low, data or {})
        return 405, {}, None

    def _get(self, low: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if low in self.store:
            return 200, {}, self.store[low]
        if low.endswith("/providers/microsoft.containerregistry/registries"):
            return 200, {}, {"value": [v for v in self.store.values()
                                       if v.get("type") == "microsoft.containerregistry/registries"]}
        if low.endswith("/resources"):
            rg = low[: -len("/resources")]
            found = [v for k, v in self.store.items() if k.startswith(rg + "/providers/")
                     and v.get("type") in ("microsoft.storage/storageaccounts", "microsoft.web/serverfarms",
                                           "microsoft.web/sites", "microsoft.eventgrid/systemtopics",
                                           "microsoft.managedidentity/userassignedidentities",
                                           "microsoft.servicebus/namespaces")]
            m = re.match(r"tagName eq '([^']*)' and tagValue eq '([^']*)'", query.get("$filter", ""))
            if m:
                found = [v for v in found if (v.get("tags") or {}).get(m[1]) == m[2]]
            return 200, {}, {"value": [{k: v[k] for k in ("id", "name", "type", "tags", "location") if k in v}
                                       for v in found]}
        if low.endswith("/providers/microsoft.authorization/roledefinitions"):
            m = re.fullmatch(r"roleName eq '([^']*)'", query.get("$filter", ""))
            wanted = [m[1]] if m else list(BUILTIN_ROLES)
            sub = low.split("/")[2] if low.startswith("/subscriptions/") else SUB
            return 200, {}, {"value": [
                {"id": f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{BUILTIN_ROLES[n]}",
                 "name": BUILTIN_ROLES[n], "type": "Microsoft.Authorization/roleDefinitions",
                 "properties": {"roleName": n, "type": "BuiltInRole"}} for n in wanted if n in BUILTIN_ROLES]}
        if low.endswith("/providers/microsoft.authorization/roleassignments"):
            scope = low[: -len("/providers/microsoft.authorization/roleassignments")]
            m = re.match(r"principalId eq '([^']*)'", query.get("$filter", ""))
            found = [v for k, v in self.store.items() if v.get("type") == "microsoft.authorization/roleassignments"
                     and k.startswith(scope)
                     and (not m or v["properties"].get("principalId") == m[1])]
            return 200, {}, {"value": found}
        if low.endswith("/functions"):
            return 200, {}, {"value": self._functions(self._site_of(low))}
        if low.endswith("/slots"):
            return 200, {}, {"value": self._children(low)}
        if re.search(r"/config/(web|slotconfignames)$", low) and self._site_of(low) in self.store:
            return 200, {}, {"id": low, "properties": {}}
        return 404, {}, {"error": {"code": "ResourceNotFound", "message": f"{low} was not found"}}

    def _refusal(self, path: str, kind: str, data: dict[str, Any]) -> tuple[int, dict[str, str], Any] | None:
        """What Azure refuses, as its references say (see the module docstring)."""
        props = data.get("properties") or {}
        if kind == "microsoft.authorization/roleassignments":
            role = (props.get("roleDefinitionId") or "").rsplit("/", 1)[-1].lower()
            if role not in BUILTIN_ROLES.values():
                return 400, {}, {"error": {"code": "RoleDefinitionDoesNotExist",
                                           "message": "The specified role definition with ID "
                                                      f"'{role}' does not exist."}}
        if kind == "microsoft.servicebus/namespaces":  # azure_reference: the namespace name rules
            name = path.rstrip("/").rsplit("/", 1)[-1]
            low_name, (shortest, longest) = name.lower(), SERVICE_BUS_NAME_LENGTH
            if not (shortest <= len(name) <= longest and re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", low_name)) \
                    or low_name.endswith(SERVICE_BUS_RESERVED_ENDINGS):
                return 400, {}, {"error": {"code": "BadRequest", "message": f"The specified name '{name}' is "
                                           "invalid for a Service Bus namespace."}}
        if kind == "microsoft.servicebus/namespaces/queues" and path.lower().split("/queues/")[0] not in self.store:
            return 404, {}, {"error": {"code": "ParentResourceNotFound", "message": "The namespace does not exist."}}
        if kind == "microsoft.web/sites/slots":
            site = self.store.get(path.lower().split("/slots/")[0], {})
            plan = self.store.get((site.get("properties", {}).get("serverFarmId") or "").lower(), {})
            if (plan.get("sku") or {}).get("tier") in TIERS_WITHOUT_SLOTS:
                return 409, {}, {"error": {"code": "Conflict", "message": "Cannot create more than 0 slots "
                                           "for this App Service plan tier."}}
        if kind == "microsoft.eventgrid/systemtopics/eventsubscriptions":  # facts.EVENTGRID_VALIDATION_FAILED
            url = (props.get("destination") or {}).get("properties", {}).get("endpointUrl") or ""
            query = parse_qs(urlsplit(url).query)
            down, self.webhook_down = self.webhook_down > 0, max(self.webhook_down - 1, 0)
            if down or query.get("code") != [BLOBS_KEY]:  # the blobs extension also refuses a wrong key
                return 400, {}, {"error": {"code": "Url validation", "message": "Webhook validation handshake "
                                           f"failed for {url.split('?')[0]}. Http POST request failed with response "
                                           "code Unknown. For troublehooting, visit https://aka.ms/esvalidation."}}
        if kind == "microsoft.web/sites":
            plan = self.store.get((props.get("serverFarmId") or "").lower(), {})
            if (plan.get("sku") or {}).get("tier") == "FlexConsumption" and "ftpsState" in (props.get("siteConfig")
                                                                                          or {}):
                return 400, {}, {"error": {"code": "BadRequest", "message": "The parameter ftpsState is not "
                                           "supported for Flex Consumption apps."}}
        return None

    def _put(self, path: str, data: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        low = path.lower()
        kind = _type_of(path)
        refused = self._refusal(path, kind, data)
        if refused is not None:
            return refused
        existed = low in self.store
        body = copy.deepcopy(data)
        if kind in ("microsoft.web/sites", "microsoft.web/sites/slots"):
            site_config = body.get("properties", {}).pop("siteConfig", None) or {}
            app_settings = site_config.pop("appSettings", None)
            if existed:
                body = _merge(copy.deepcopy(self.store[low]), body)
            if site_config:
                config = self.store.setdefault(f"{low}/config/web", {"id": f"{low}/config/web", "properties": {}})
                _merge(config["properties"], site_config)
            if not existed:
                self._sync(low)  # the new site's host starts and fills the list
            if app_settings is not None:  # a create's settings are the site's settings
                self.store[f"{low}/config/appsettings"] = {
                    "id": f"{low}/config/appsettings", "name": "appsettings",
                    "properties": {pair["name"]: pair["value"] for pair in app_settings}}
        resource = self._enrich(path, body)
        self.store[low] = resource
        if kind in ASYNC_TYPES and not existed:
            op = uuid.uuid4().hex
            self.operations[op] = (200, resource)
            return 202, {"Location": f"https://management.azure.com/fake-operations/{op}"}, None
        # App Service answers 200 to a create, and so does Service Bus for a queue (its REST spec lists only 200 for
        # Queues - Create Or Update; azure-mgmt-servicebus refuses a 201 as an invalid status).
        created = not existed and not kind.startswith("microsoft.web/") \
            and kind != "microsoft.servicebus/namespaces/queues"
        return (201 if created else 200), {}, resource

    def _post(self, low: str, data: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if low.endswith("/config/appsettings/list"):
            stored = self.store.get(low[: -len("/list")])
            return 200, {}, stored or {"id": low[: -len("/list")], "properties": {}}
        if low.endswith("/listkeys") and "/storageaccounts/" in low:
            return 200, {}, {"keys": [{"keyName": "key1", "value": STORAGE_KEY, "permissions": "FULL"},
                                      # an account has two keys (az reads both); one secret, so a print of either shows
                                      {"keyName": "key2", "value": STORAGE_KEY, "permissions": "FULL"}]}
        if low.endswith("/slotsswap"):
            site = self._site_of(low)
            if site not in self.store:
                return 404, {}, {"error": {"code": "ResourceNotFound", "message": "no site"}}
            self._swap(site, data["targetSlot"])
            op = uuid.uuid4().hex
            self.operations[op] = (200, None)
            return 202, {"Location": f"https://management.azure.com/fake-operations/{op}"}, None
        if low.endswith("/restart"):
            self.restarts.append(self._site_of(low))
            self._sync(self._site_of(low))
            return 200, {}, None
        if low.endswith("/syncfunctiontriggers"):
            self.syncs.append(self._site_of(low))
            self._sync(self._site_of(low))
            return 204, {}, None  # what the REST spec (and so azure-mgmt-web) expects of SyncFunctionTriggers
        if low.endswith("/host/default/listkeys"):
            return 200, {}, {"masterKey": "master-SECRET", "functionKeys": {"default": "fnkey-SECRET"},
                             "systemKeys": {"blobs_extension": BLOBS_KEY}}
        return 404, {}, {"error": {"code": "NotModelled", "message": low}}

    # ---- what the Azure CLI (azure-cli from PyPI) asks beyond what modelfunc does: tests/azure/test_azure_parity.py
    # runs the CLI's manual recipe against this model. Shapes from the ARM REST references, kept to what az reads.
    def _cli(self, method: str, path: str, low: str, query: dict[str, str],
             data: Any) -> tuple[int, dict[str, str], Any] | None:
        if method == "GET" and low == "/subscriptions":  # Subscriptions - List (az login)
            tokens = [r.path for r in self.requests
                      if r.host == "login.microsoftonline.com" and r.path.endswith("/token")]
            tenant = tokens[-1].strip("/").split("/")[0] if tokens else "t"  # the tenant the caller signed in to
            return 200, {}, {"value": [{"id": f"/subscriptions/{SUB}", "subscriptionId": SUB, "tenantId": tenant,
                                        "displayName": "fake subscription", "state": "Enabled",
                                        "authorizationSource": "RoleBased", "managedByTenants": [],
                                        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                                                 "quotaId": "PayAsYouGo_2014-09-01",
                                                                 "spendingLimit": "Off"}}]}
        if method == "POST" and low.endswith("/checknameavailability"):  # Storage and Web: names are global
            name = str((data or {}).get("name") or "").lower()
            kind = "microsoft.web/sites" if "/microsoft.web/" in low else \
                "microsoft.containerregistry/registries" if "/microsoft.containerregistry/" in low else \
                "microsoft.servicebus/namespaces" if "/microsoft.servicebus/" in low else \
                "microsoft.storage/storageaccounts"
            taken = any(v.get("type") == kind and str(v.get("name")).lower() == name for v in self.store.values())
            taken = taken or name in self.names_taken_elsewhere  # global names another subscription holds
            if not taken:
                return 200, {}, {"nameAvailable": True}
            return 200, {}, {"nameAvailable": False, "reason": "AlreadyExists",
                             "message": f"The name {name} is already taken."}
        if method == "GET" and low == "/providers/microsoft.web/functionappstacks":  # Provider - Get Function App
            def stack(name: str, text: str, version: str, fx: str) -> dict[str, Any]:  # Stacks (az functionapp create)
                linux = {"runtimeVersion": fx, "isDefault": True, "remoteDebuggingSupported": False,
                         "appInsightsSettings": {"isSupported": True},
                         "gitHubActionSettings": {"isSupported": True, "supportedVersion": version},
                         "appSettingsDictionary": {"FUNCTIONS_WORKER_RUNTIME": name},
                         "siteConfigPropertiesDictionary": {"use32BitWorkerProcess": False, "linuxFxVersion": fx},
                         "supportedFunctionsExtensionVersions": ["~4"], "endOfLifeDate": "2099-12-31T00:00:00Z"}
                minor = {"displayText": f"{text} {version}", "value": version,
                         "stackSettings": {"linuxRuntimeSettings": linux}}
                return {"name": name, "type": "Microsoft.Web/functionAppStacks",
                        "properties": {"displayText": text, "value": name, "preferredOs": "linux", "majorVersions": [
                            {"displayText": f"{text} {version.split('.')[0]}", "value": version.split(".")[0],
                             "minorVersions": [minor]}]}}
            return 200, {}, {"value": [stack("dotnet", ".NET", "8", "DOTNET|8.0"),
                                       stack("python", "Python", "3.11", "Python|3.11")]}
        wanted = re.fullmatch(r"resourceType eq '([^']*)'", query.get("$filter", ""))
        if method == "GET" and wanted and re.fullmatch(r"/subscriptions/[^/]+/resources", low):  # Resources - List
            found = [v for v in self.store.values() if str(v.get("type")).lower() == wanted[1].lower()]
            return 200, {}, {"value": [{k: v[k] for k in ("id", "name", "type", "location", "tags") if k in v}
                                       for v in found]}
        if method == "POST" and low.endswith("/listcredentials") and "/registries/" in low:  # the admin user's
            registry = self.store.get(low[: -len("/listcredentials")])
            if not registry or not registry.get("properties", {}).get("adminUserEnabled"):
                return 400, {}, {"error": {"code": "BadRequest", "message": "admin user is disabled"}}
            return 200, {}, {"username": registry["name"], "passwords": [
                {"name": "password", "value": REGISTRY_PASSWORD}, {"name": "password2", "value": REGISTRY_PASSWORD}]}
        if method == "POST" and low.endswith("/config/connectionstrings/list"):  # (az clones them to a new slot)
            stored = self.store.get(low[: -len("/list")])
            return 200, {}, stored or {"id": low[: -len("/list")], "name": "connectionstrings", "properties": {}}
        swap = re.fullmatch(r"(.*/microsoft\.web/sites/[^/]+)/slots/([^/]+)/slotsswap", low)
        if method == "POST" and swap and str((data or {}).get("targetSlot")).lower() == "production":
            if f"{swap[1]}/slots/{swap[2]}" not in self.store:  # az swaps from the slot's side (Web Apps -
                return 404, {}, {"error": {"code": "ResourceNotFound", "message": "no slot"}}  # Swap Slot Slot)
            self._swap(swap[1], swap[2])
            op = uuid.uuid4().hex
            self.operations[op] = (200, None)
            return 202, {"Location": f"https://management.azure.com/fake-operations/{op}"}, None
        props = (data or {}).get("properties") if isinstance(data, dict) else None
        farm = (props or {}).get("serverFarmId") if method == "PUT" else None
        if farm and "/" not in farm:  # az sends the plan's name; ARM takes it as a plan in the site's group
            props["serverFarmId"] = f"{path.split('/providers/')[0]}/providers/Microsoft.Web/serverfarms/{farm}"
        return None

    def _scm(self, method: str, path: str, app: str, data: Any) -> tuple[int, dict[str, str], Any]:
        """OneDeploy on the app's scm (Kudu) host, as Kudu answers it (facts.py, "zip deploy"): POST /api/publish is
        202 + Location (/api/deployments/latest) + the deployment id in the body; GET /api/deployments/<id|latest>
        shows the record, Building (1) on the first poll, then the outcome (4 Success, or 3 Failed ...). Only a
        successful deployment becomes the app's package (and so its function list)."""
        host = f"{app}.scm.azurewebsites.net"
        if method == "POST" and path == "/api/publish":
            if self.scm_faults:
                return self.scm_faults.pop(0), {}, None
            deployment_id = uuid.uuid4().hex
            status, text = self.kudu_outcomes.pop(0) if self.kudu_outcomes else (4, "Build successful.")
            self.kudu[deployment_id] = {
                "id": deployment_id, "status": 1, "status_text": "Building", "progress": "", "complete": False,
                "active": False, "deployer": "OneDeploy", "site_name": app, "polls": 0, "outcome": (status, text),
                "zip": data, "log_url": f"https://{host}/api/deployments/{deployment_id}/log",
                "url": f"https://{host}/api/deployments/{deployment_id}"}
            self.kudu["latest"] = self.kudu[deployment_id]
            return 202, {"Location": f"https://{host}/api/deployments/latest?deployer=OneDeploy&time=now"}, \
                deployment_id
        m = re.fullmatch(r"/api/deployments/([^/]+)", path)
        if method == "GET" and m and m[1] in self.kudu:
            record = self.kudu[m[1]]
            record["polls"] += 1
            if record["polls"] > 1 and not record["complete"]:
                record["status"], record["status_text"] = record["outcome"]
                record["complete"] = record["status"] in (-1, 3, 4, 5, 6)  # 0-2 (Pending..Deploying): not yet
                if record["status"] == 4:
                    record["active"] = True
                    self.published[app] = record["zip"]
            return 200, {}, {k: v for k, v in record.items() if k not in ("polls", "outcome", "zip")}
        return 404, {}, None

    def _aad(self, method: str, path: str, form: Any) -> tuple[int, dict[str, str], Any]:
        tenant = path.strip("/").split("/")[0]
        if "openid-configuration" in path:
            base = f"https://login.microsoftonline.com/{tenant}"
            return 200, {}, {"token_endpoint": f"{base}/oauth2/v2.0/token", "issuer": f"{base}/v2.0",
                             "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                             "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"}
        if "discovery/instance" in path:
            return 200, {}, {"tenant_discovery_endpoint": f"https://login.microsoftonline.com/{tenant}/v2.0/"
                                                          ".well-known/openid-configuration", "metadata": []}
        if path.endswith("/token"):
            self.aad_forms.append(form)
            return 200, {}, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
        return 404, {}, {"error": "not_found"}


class _Adapter(requests.adapters.BaseAdapter):
    def __init__(self, arm: FakeArm) -> None:
        super().__init__()
        self.arm = arm

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        if hasattr(body, "read"):
            body = body.read()
        status, headers, payload = self.arm.handle(request.method or "GET", request.url or "", body, request.headers)
        content = b"" if payload is None else json.dumps(payload).encode()
        resp = requests.Response()
        resp.status_code = status
        resp.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        resp._content = content
        resp.raw = io.BytesIO(content)
        resp.url = request.url or ""
        resp.request = request
        resp.reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 404: "Not Found"}.get(status, "")
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        pass


@dataclass
class Sequence:
    """Helpers to read a recorded request list."""

    requests: list[Req] = field(default_factory=list)

    def shorts(self) -> list[tuple[str, str]]:
        return [r.short() for r in self.requests]
