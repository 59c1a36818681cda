"""Which Azure cloud modelfunc talks to: the public cloud, a sovereign cloud, or Azure Stack / a private cloud.

:func:`resolve` turns a cloud name (``AzureCloud``, ``AzureChinaCloud``, ``AzureUSGovernment``; their ARM
endpoints come from azure-core / azure-mgmt-core, not from this file) or an ARM endpoint URL (Azure Stack Hub,
a private cloud: ``--arm-endpoint`` / ``MODELFUNC_ARM_ENDPOINT``) into a :class:`Cloud`. Either way it reads
``{arm}/metadata/endpoints?api-version=2022-09-01`` — what ``az cloud register --endpoint-resource-manager``
reads — for the sign-in authority (``authentication.loginEndpoint``), the ARM token audience
(``authentication.audiences[0]``, the scope is that plus ``/.default``) and the storage and container
registry DNS suffixes (``suffixes.storage``, ``suffixes.acrLoginServer``). Answers are cached per endpoint
for the life of the process. The request verifies TLS with the default trust store, or the CA bundle in
``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` / ``SSL_CERT_FILE`` (e.g. an Azure Stack root CA).

Where the cloud is used: :class:`~modelfunc.azure.clients.PipelineSettings` has a ``cloud`` (``None``: the
SDK's public-cloud defaults, with no network call — what the in-process tests rely on); every management
client then gets ``base_url=cloud.arm_endpoint`` and ``credential_scopes=[cloud.arm_scope]``;
:func:`~modelfunc.azure.credentials.get_credential` takes ``cloud=`` for the authority. Code that builds a
host name (storage account URLs, a registry login server) or asks for a token calls :func:`suffixes_for`
with its settings: the cloud's values, or the public cloud's when no cloud was set (taken from the
installed Azure libraries; only the registry suffix, which no installed library exposes, is written here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from azure.core import AzureClouds, PipelineClient
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest
from azure.identity import AzureAuthorityHosts
from azure.mgmt.core.tools import get_arm_endpoints

from ..errors import OptionError

METADATA_API_VERSION = "2022-09-01"
ENV_CLOUD = "MODELFUNC_CLOUD"
ENV_ARM_ENDPOINT = "MODELFUNC_ARM_ENDPOINT"
DEFAULT_CLOUD = "AzureCloud"

# name -> (azure-core's cloud, azure-identity's authority host). Nothing here is typed by hand.
KNOWN: dict[str, tuple[AzureClouds, str]] = {
    "AzureCloud": (AzureClouds.AZURE_PUBLIC_CLOUD, AzureAuthorityHosts.AZURE_PUBLIC_CLOUD),
    "AzureChinaCloud": (AzureClouds.AZURE_CHINA_CLOUD, AzureAuthorityHosts.AZURE_CHINA),
    "AzureUSGovernment": (AzureClouds.AZURE_US_GOVERNMENT, AzureAuthorityHosts.AZURE_GOVERNMENT),
}
NAMES = tuple(KNOWN)

# The audience of a token for an app's deployment (Kudu / scm) host, per cloud, as Microsoft's own CLI asks for it:
# azure-cli's CloudEndpoints.app_service_resource_id (azure/cli/core/cloud.py; used by appservice's
# get_bearer_token for OneDeploy), read from a cloud's metadata as ``appServiceResourceId`` when it has one.
APP_SERVICE_RESOURCES = {
    "AzureCloud": "https://appservice.azure.com",
    "AzureChinaCloud": "https://management.core.chinacloudapi.cn/",
    "AzureUSGovernment": "https://management.core.usgovcloudapi.net/",
}


def scope_of(resource: str) -> str:
    """A resource (audience) as a token scope: ``<resource>/.default``, one slash between (as az's
    resource_to_scopes writes it)."""
    return resource.rstrip("/") + "/.default"

ARM_HINT = ("the Azure Resource Manager endpoint of the cloud, e.g. https://management.<region>.<fqdn>/ for "
            "Azure Stack Hub; it must answer /metadata/endpoints (as `az cloud register "
            "--endpoint-resource-manager` needs)")


@dataclass(frozen=True)
class Cloud:
    name: str
    arm_endpoint: str  # https://.../ (with the trailing slash)
    authority_host: str  # the Azure AD (Entra) sign-in host, as azure-identity's ``authority`` takes it
    arm_scope: str  # the scope of an ARM token, e.g. <audience>/.default
    storage_suffix: str  # core.windows.net in the public cloud: <account>.blob.<suffix>
    acr_suffix: str  # azurecr.io in the public cloud: <registry>.<suffix>
    app_service_scope: str | None = None  # a Kudu (scm) token's scope; None: the ARM scope (a cloud without one)

    @property
    def kudu_scope(self) -> str:
        return self.app_service_scope or self.arm_scope

    @property
    def known(self) -> bool:
        """One of the clouds azure-identity knows (instance discovery works); else Azure Stack / private."""
        return self.name in KNOWN and _host(self.authority_host) == _host(KNOWN[self.name][1])


def _host(url_or_host: str) -> str:
    text = url_or_host.strip().lower()
    return (urlsplit(text).hostname or "") if "//" in text else text.strip("/")


def _public_storage_suffix() -> str:
    from azure.storage.blob._shared.constants import SERVICE_HOST_BASE

    return SERVICE_HOST_BASE


def public() -> Cloud:
    """The public cloud from the installed libraries' constants: no network call."""
    endpoints = get_arm_endpoints(AzureClouds.AZURE_PUBLIC_CLOUD)
    return Cloud(name=DEFAULT_CLOUD, arm_endpoint=endpoints["resource_manager"],
                 authority_host=AzureAuthorityHosts.AZURE_PUBLIC_CLOUD, arm_scope=endpoints["credential_scopes"][0],
                 storage_suffix=_public_storage_suffix(),
                 acr_suffix="azurecr.io",  # no installed library exposes the registry suffix
                 app_service_scope=scope_of(APP_SERVICE_RESOURCES[DEFAULT_CLOUD]))


def suffixes_for(settings: Any) -> Cloud:
    """The cloud of these PipelineSettings (or a Cloud, or None); the public one when no cloud was set."""
    cloud = settings if isinstance(settings, Cloud) else getattr(settings, "cloud", None)
    return cloud if cloud is not None else public()


def for_options(name: str | None, arm_endpoint: str | None, *, transport: Any = None) -> Cloud | None:
    """The cloud ``--cloud`` / ``--arm-endpoint`` (or the action's ``cloud`` / ``arm-endpoint`` inputs) ask for.

    None for the public cloud: the SDK's own defaults are used and nothing is looked up. An ARM endpoint
    together with another cloud's name is an OptionError."""
    name = (name or "").strip() or DEFAULT_CLOUD
    arm_endpoint = (arm_endpoint or "").strip() or None
    if arm_endpoint and name != DEFAULT_CLOUD:
        raise OptionError(f"cannot be combined with --cloud {name}", field="arm-endpoint",
                          hint="--arm-endpoint is for Azure Stack Hub / private clouds; leave one of them out")
    if arm_endpoint:
        return resolve(arm_endpoint=arm_endpoint, transport=transport)
    if name != DEFAULT_CLOUD:
        return resolve(name, transport=transport)
    return None


def with_cloud(settings: Any, cloud: Cloud | None) -> Any:
    """``settings`` (PipelineSettings) with ``cloud`` set; unchanged when ``cloud`` is None."""
    return settings if cloud is None else dataclasses.replace(settings, cloud=cloud)


_cache: dict[str, Cloud] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _normalise_endpoint(arm_endpoint: str) -> str:
    text = (arm_endpoint or "").strip()
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise OptionError(f"{arm_endpoint!r} is not an https:// URL", field="arm-endpoint", hint=ARM_HINT)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise OptionError(f"{arm_endpoint!r} has an invalid port", field="arm-endpoint", hint=ARM_HINT) from None
    return text.rstrip("/") + "/"


def _verify() -> dict[str, Any]:
    """requests honours REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE itself; SSL_CERT_FILE is honoured here too."""
    if not (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")) \
            and os.environ.get("SSL_CERT_FILE"):
        return {"connection_verify": os.environ["SSL_CERT_FILE"]}
    return {}


def _fetch(arm: str, transport: Any, timeout: float) -> Any:
    url = f"{arm}metadata/endpoints?api-version={METADATA_API_VERSION}"
    client = PipelineClient(arm, policies=[RetryPolicy(retry_total=2, retry_backoff_factor=0.5)],
                            **({"transport": transport} if transport is not None else {}))
    try:
        with contextlib.ExitStack() as stack:
            if transport is None:  # a transport passed in is the caller's to close
                stack.enter_context(client)
            response = client.send_request(HttpRequest("GET", url, headers={"Accept": "application/json"}),
                                           connection_timeout=timeout, read_timeout=timeout, **_verify())
            response.read()
    except AzureError as e:
        reason = str(getattr(e, "message", "") or e).strip().splitlines()
        raise OptionError(f"{url} could not be read ({type(e).__name__}: {(reason or [''])[0][:200]})",
                          field="arm-endpoint", hint=ARM_HINT) from None
    if response.status_code != 200:
        raise OptionError(f"{url} answered HTTP {response.status_code}", field="arm-endpoint", hint=ARM_HINT)
    try:
        return response.json()
    except ValueError:
        raise OptionError(f"{url} did not answer JSON", field="arm-endpoint", hint=ARM_HINT) from None


def _pick(metadata: Any, arm: str, name: str | None) -> dict[str, Any]:
    """The answer is one cloud (Azure Stack) or a list of clouds (the public endpoints list them all)."""
    entries = metadata if isinstance(metadata, list) else [metadata]
    entries = [e for e in entries if isinstance(e, dict)]
    if name:
        for entry in entries:
            if entry.get("name") == name:
                return entry
    for entry in entries:
        if str(entry.get("resourceManager") or "").rstrip("/").lower() == arm.rstrip("/").lower():
            return entry
    if len(entries) == 1:
        return entries[0]
    raise OptionError(f"the metadata of {arm} does not describe this endpoint", field="arm-endpoint", hint=ARM_HINT)


def _from_metadata(entry: dict[str, Any], arm: str, name: str | None) -> Cloud:
    def text(value: Any) -> str | None:
        return value.strip() if isinstance(value, str) and value.strip() else None

    auth = entry.get("authentication") if isinstance(entry.get("authentication"), dict) else {}
    suffixes = entry.get("suffixes") if isinstance(entry.get("suffixes"), dict) else {}
    audiences = auth.get("audiences") if isinstance(auth.get("audiences"), list) else []
    found = {
        "authentication.loginEndpoint": text(auth.get("loginEndpoint")),
        "authentication.audiences": text(audiences[0]) if audiences else None,
        "suffixes.storage": text(suffixes.get("storage")),
        "suffixes.acrLoginServer": text(suffixes.get("acrLoginServer")),
    }
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise OptionError(f"the metadata of {arm} has no {', '.join(missing)}", field="arm-endpoint", hint=ARM_HINT)
    cloud_name = name or text(entry.get("name")) or arm
    authority = found["authentication.loginEndpoint"]
    if name in KNOWN:  # azure-identity's constant (ARM still names an older host for the public cloud)
        authority = KNOWN[name][1]
    return Cloud(name=cloud_name, arm_endpoint=arm, authority_host=authority.rstrip("/"),  # type: ignore[union-attr]
                 arm_scope=f"{found['authentication.audiences']}/.default",
                 storage_suffix=found["suffixes.storage"].strip("."),  # type: ignore[union-attr]
                 acr_suffix=found["suffixes.acrLoginServer"].strip("."),  # type: ignore[union-attr]
                 app_service_scope=(lambda r: scope_of(r) if r else None)(
                     text(entry.get("appServiceResourceId")) or APP_SERVICE_RESOURCES.get(cloud_name)))


def resolve(name: str | None = None, arm_endpoint: str | None = None, *, transport: Any = None,
            timeout: float = 30.0) -> Cloud:
    """The cloud for a name (``AzureCloud``...) or an ARM endpoint (``MODELFUNC_ARM_ENDPOINT`` when neither is given).

    Raises OptionError (field ``cloud`` or ``arm-endpoint``) when the name is unknown, both are given, or the
    endpoint's metadata cannot be read or lacks what is needed."""
    if name and arm_endpoint:
        raise OptionError("give a cloud name or an ARM endpoint, not both", field="arm-endpoint",
                          hint="--arm-endpoint is for Azure Stack / private clouds; --cloud for the named ones")
    if not name and not arm_endpoint:
        arm_endpoint = os.environ.get(ENV_ARM_ENDPOINT) or None
        if not arm_endpoint:
            name = os.environ.get(ENV_CLOUD) or DEFAULT_CLOUD
    if name:
        if name not in KNOWN:
            raise OptionError(f"{name!r} is not a known cloud", field="cloud",
                              hint=f"one of {', '.join(NAMES)}; for another cloud give --arm-endpoint")
        arm = get_arm_endpoints(KNOWN[name][0])["resource_manager"]
    else:
        arm = _normalise_endpoint(arm_endpoint or "")
    arm = arm.rstrip("/") + "/"
    key = f"{name or ''}|{arm.lower()}"
    with _lock:
        if key in _cache:
            return _cache[key]
    cloud = _from_metadata(_pick(_fetch(arm, transport, timeout), arm, name), arm, name)
    with _lock:
        _cache[key] = cloud
    return cloud
