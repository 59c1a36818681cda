"""Push access to an Azure Container Registry with an Entra token: no admin user, no stored password.

``docker_credentials`` does what ``az acr login`` does: it exchanges the signed-in identity's token for an
ACR refresh token (``POST https://<registry>/oauth2/exchange``, ``grant_type=access_token``) and returns the
``docker login`` pair ACR accepts for it: the null-GUID user name and that refresh token, which is short-lived
and is a secret (callers mask it before anything prints). The identity needs AcrPush on the registry.
"""

from __future__ import annotations

from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest

from ..errors import CredentialError, OptionError
from .credentials import ARM_SCOPE, SETUP_HINT

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
                       scope: str = ARM_SCOPE) -> tuple[str, str]:
    """(user name, password) for ``docker login <registry>`` from ``credential``; see the module docstring.

    ``scope``: the ARM scope of the cloud the registry is in (``modelfunc.azure.clouds``; default: public)."""
    server = login_server(registry)
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
            status = response.status_code
    except AzureError as e:
        raise CredentialError(f"could not reach {server} to exchange the sign-in token: {e.message}",
                              hint="check the registry name (input registry)") from None
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
