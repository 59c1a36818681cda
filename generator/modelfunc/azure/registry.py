"""Push access to an Azure Container Registry with an Entra token: no admin user, no stored password.

``docker_credentials`` does what ``az acr login`` does: it exchanges the signed-in identity's token for an
ACR refresh token (``POST https://<registry>/oauth2/exchange``, ``grant_type=access_token``) and returns the
``docker login`` pair ACR accepts for it: the null-GUID user name and that refresh token, which is short-lived
and is a secret (callers mask it before anything prints). The identity needs AcrPush on the registry.

``ensure_registry`` makes a new user's first push work: when no registry in the subscription has the login
server, it creates one (Basic, admin user disabled, tagged) in the app's resource group — what
``az acr create --sku Basic --admin-enabled false`` would — or stops with a clear error when the name is taken.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.containerregistry.models import Registry, RegistryNameCheckRequest, Sku

from ..errors import CredentialError, OptionError
from .clients import Clients, PipelineSettings, arm_call, read_or_none
from .credentials import ARM_SCOPE, SETUP_HINT

# A registry can refuse ARM-audience tokens (its "authentication-as-arm" policy disabled); then only a token
# for ACR's own audience is exchanged, as `az acr login` falls back to.
# https://learn.microsoft.com/azure/container-registry/container-registry-disable-authentication-as-arm
ACR_AUDIENCE_SCOPE = "https://containerregistry.azure.net/.default"  # public cloud

# Registry names: 5-50 letters and digits, global across Azure.
# https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftcontainerregistry
REGISTRY_NAME_RE = re.compile(r"[a-zA-Z0-9]{5,50}")

TOKEN_USER = "00000000-0000-0000-0000-000000000000"  # ACR's user name for a token login


def login_server(registry: str, suffix: str | None = None) -> str:
    """``myreg`` → ``myreg.azurecr.io`` (``suffix``: the cloud's registry suffix, default the public cloud's);
    a login server (``myreg.azurecr.io``) is kept as it is."""
    registry = (registry or "").strip().lower().removeprefix("https://").rstrip("/")
    if not registry:
        raise OptionError("no container registry given", field="registry",
                          hint="the Azure Container Registry's name (myreg) or login server (myreg.azurecr.io)")
    if "." in registry or ":" in registry:
        return registry
    from .clouds import public

    return f"{registry}.{(suffix or public().acr_suffix).lstrip('.')}"


def docker_credentials(registry: str, credential: TokenCredential, *, transport: Any = None,
                       retry_backoff_factor: float = 0.8, scheme: str = "https",
                       scope: str = ARM_SCOPE, fallback_scope: str | None = ACR_AUDIENCE_SCOPE) -> tuple[str, str]:
    """(user name, password) for ``docker login <registry>`` from ``credential``; see the module docstring.

    ``scope``: the ARM scope of the cloud the registry is in (``modelfunc.azure.clouds``; default: public).
    When the registry refuses that token (401/403), a token for ``fallback_scope`` (ACR's own audience) is
    tried once: a registry may accept only that (``None``: no second try, e.g. a cloud whose ACR audience is
    not known)."""
    server = login_server(registry)
    for audience in [scope] + ([fallback_scope] if fallback_scope and fallback_scope != scope else []):
        response, status = _exchange(server, credential, audience, transport=transport, scheme=scheme,
                                     retry_backoff_factor=retry_backoff_factor)
        if status not in (401, 403):
            break
    if status in (401, 403):
        raise CredentialError(f"{server} refused the identity's token (HTTP {status})",
                              hint="give the identity AcrPush on the registry (role assignment), then run again")
    if status != 200:
        raise CredentialError(f"{server} answered the token exchange with HTTP {status}",
                              hint="is it an Azure Container Registry? (input registry)")
    try:
        refresh = response.json()["refresh_token"]
    except (ValueError, KeyError):
        raise CredentialError(f"{server} answered the token exchange without a refresh_token") from None
    return TOKEN_USER, refresh


def _exchange(server: str, credential: TokenCredential, scope: str, *, transport: Any, scheme: str,
              retry_backoff_factor: float) -> tuple[Any, int]:
    """POST the identity's token for ``scope`` to the registry's /oauth2/exchange; (response, status)."""
    try:
        aad_token = credential.get_token(scope).token
    except ClientAuthenticationError as e:
        raise CredentialError(f"could not sign in to push to {server}: {str(e).splitlines()[0]}",
                              hint=SETUP_HINT) from None
    client = PipelineClient(f"{scheme}://{server}", policies=[RetryPolicy(retry_backoff_factor=retry_backoff_factor)],
                            transport=transport)
    request = HttpRequest("POST", f"{scheme}://{server}/oauth2/exchange",
                          data={"grant_type": "access_token", "service": server, "access_token": aad_token})
    try:
        with client:
            response = client.send_request(request)
            response.read()
            return response, response.status_code
    except AzureError as e:
        raise CredentialError(f"could not reach {server} to exchange the sign-in token: {e.message}",
                              hint="check the registry name (input registry)") from None


def ensure_registry(server: str, *, credential: TokenCredential, subscription_id: str, resource_group: str,
                    location: str | None, tags: dict[str, str], acr_suffix: str,
                    settings: PipelineSettings | None = None,
                    progress: Callable[[str], None] = lambda _: None) -> str:
    """The resource id of the registry whose login server is ``server``; created when the subscription has none.

    Created in ``resource_group`` (made in ``location`` when missing): SKU Basic, admin user disabled (pushes
    and pulls go by Entra identity), ``tags``. A name taken elsewhere in Azure, or not a valid registry name,
    is an OptionError naming the ``registry`` input. The caller needs Contributor on the group (which also
    lets it push) — or the registry must exist already."""
    name, _, suffix = server.partition(".")
    if suffix.split(":")[0].lower() != acr_suffix.lower().lstrip("."):
        raise OptionError(f"{server} is not an Azure Container Registry login server (<name>.{acr_suffix})",
                          field="registry", hint="the registry's name (myreg) or login server")
    clients = Clients(credential, subscription_id, settings or PipelineSettings())
    try:
        registries = clients.registry().registries
        with arm_call("list container registries"):
            for found in registries.list():
                if (found.login_server or "").lower() == server.lower():
                    return found.id
        if not REGISTRY_NAME_RE.fullmatch(name):
            raise OptionError(f"{name!r} is not a valid container registry name: 5-50 letters and digits",
                              field="registry", hint="e.g. diabetesscorers")
        with arm_call(f"check the registry name {name}"):
            check = registries.check_name_availability(RegistryNameCheckRequest(
                name=name, type="Microsoft.ContainerRegistry/registries"))
        if not check.name_available:
            raise OptionError(f"container registry {name} is not in subscription {subscription_id}, and its name "
                              f"is taken ({check.message or check.reason})", field="registry",
                              hint="registry names are global: choose another, or pass the registry the image "
                                   "should go to")
        group = read_or_none(clients.resource.resource_groups.get, resource_group,
                             what=f"resource group {resource_group}")
        if group is None:
            if not location:
                raise OptionError(f"resource group {resource_group!r} does not exist, and no location was given to "
                                  "create it (with the container registry)", field="location",
                                  hint="e.g. location: westeurope")
            progress(f"==> create resource group {resource_group} ({location})")
            with arm_call(f"create resource group {resource_group}"):
                clients.resource.resource_groups.create_or_update(resource_group, {"location": location,
                                                                                   "tags": tags})
        where = (group.location if group is not None else None) or location
        progress(f"==> create container registry {name} in {resource_group} (Basic, admin user disabled)")
        started = time.monotonic()
        with arm_call(f"create container registry {name}"):
            poller = registries.begin_create(resource_group, name, Registry(
                location=where, sku=Sku(name="Basic"), admin_user_enabled=False, tags=tags))
            while not poller.done():
                progress(f"    container registry {name}: {poller.status()} ({time.monotonic() - started:.0f} s)")
                poller.wait(5)
            created = poller.result()
        return created.id
    finally:
        clients.close()
