"""Which Azure credential to use, and a clear error when none works.

Given a client ``assertion`` (a callable returning a signed token: in GitHub Actions the workflow's OIDC ID token,
which :mod:`modelfunc.action.signin` requests and passes in): a :class:`ClientAssertionCredential` (tenant and
client id from the arguments or ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``). No stored secret.

Otherwise: :class:`EnvironmentCredential` when a service principal is in the environment, else
:class:`AzureCliCredential` when ``az`` is installed, else :class:`DefaultAzureCredential` (managed
identity, workload identity, ...). :func:`check` asks for an ARM token once and turns a failure into
a :class:`CredentialError` naming what to set up. Tokens are never logged or printed.

In another cloud than the public one, ``get_credential(cloud=...)`` signs in at that cloud's authority and
callers pass ``cloud.arm_scope`` to :func:`check` (see :mod:`modelfunc.azure.clouds`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core import AzureClouds
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    AzureCliCredential,
    ClientAssertionCredential,
    CredentialUnavailableError,
    DefaultAzureCredential,
    EnvironmentCredential,
)
from azure.mgmt.core.tools import get_arm_endpoints

from ..errors import CredentialError

if TYPE_CHECKING:
    from .clouds import Cloud

ARM_SCOPE = get_arm_endpoints(AzureClouds.AZURE_PUBLIC_CLOUD)["credential_scopes"][0]  # the public cloud's

SETUP_HINT = (
    "set up one of: in GitHub Actions, `permissions: id-token: write` plus AZURE_CLIENT_ID and AZURE_TENANT_ID "
    "(an app registration with a federated credential for this repo; no secret); a service principal in "
    "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH); or `az login`"
)


def get_credential(*, tenant_id: str | None = None, client_id: str | None = None,
                   env: Mapping[str, str] | None = None, cloud: Cloud | None = None,
                   assertion: Callable[[], str] | None = None, **kwargs: Any) -> TokenCredential:
    """The credential for this environment (see the module docstring). ``kwargs`` (e.g. ``transport``) go to it.

    ``cloud`` (see :mod:`modelfunc.azure.clouds`): sign in at its authority; for a cloud azure-identity does not
    know (Azure Stack, a private cloud) without instance discovery, which would ask the public cloud. ``az``
    (AzureCliCredential) signs in to the cloud it is set to: ``az cloud register`` / ``az cloud set`` it."""
    env = os.environ if env is None else env
    if cloud is not None:
        kwargs.setdefault("authority", cloud.authority_host)
        if not cloud.known:
            kwargs.setdefault("disable_instance_discovery", True)
    tenant = tenant_id or env.get("AZURE_TENANT_ID")
    client = client_id or env.get("AZURE_CLIENT_ID")
    if assertion is not None:
        missing = [name for name, value in (("AZURE_TENANT_ID (tenant-id)", tenant),
                                            ("AZURE_CLIENT_ID (client-id)", client)) if not value]
        if missing:
            raise CredentialError(f"GitHub OIDC sign-in needs {' and '.join(missing)}",
                                  hint="the tenant and the app registration (client) id that has a federated "
                                       "credential for this repo; neither is a secret")
        return ClientAssertionCredential(tenant, client, assertion, **kwargs)
    if env.get("AZURE_TENANT_ID") and env.get("AZURE_CLIENT_ID") and (
            env.get("AZURE_CLIENT_SECRET") or env.get("AZURE_CLIENT_CERTIFICATE_PATH")):
        return EnvironmentCredential(**kwargs)
    if shutil.which("az"):
        return AzureCliCredential(tenant_id=tenant, **{k: v for k, v in kwargs.items()
                                                       if k not in ("transport", "authority",
                                                                    "disable_instance_discovery")})
    return DefaultAzureCredential(exclude_interactive_browser_credential=True, **kwargs)


@dataclass(frozen=True)
class Principal:
    """Who the credential signs in as (from the token's claims; the token itself is not kept)."""

    object_id: str | None
    principal_type: str  # ServicePrincipal | User
    tenant_id: str | None


def _claims(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


def check(credential: TokenCredential, scope: str = ARM_SCOPE) -> Principal:
    """Get one token for ``scope``; a failure becomes a CredentialError with :data:`SETUP_HINT`."""
    try:
        token = credential.get_token(scope).token
    except CredentialUnavailableError as e:
        raise CredentialError(f"no Azure credential is available ({_first_line(e)})", hint=SETUP_HINT) from None
    except ClientAuthenticationError as e:
        raise CredentialError(f"Azure sign-in failed ({_first_line(e)})", hint=SETUP_HINT) from None
    except CredentialError:
        raise
    except Exception as e:  # noqa: BLE001 - any credential may raise anything; the user needs the hint
        raise CredentialError(f"Azure sign-in failed ({type(e).__name__}: {_first_line(e)})", hint=SETUP_HINT) from None
    claims = _claims(token)
    return Principal(claims.get("oid"), principal_type(claims), claims.get("tid"))


def principal_type(claims: Mapping[str, Any]) -> str:
    """``ServicePrincipal`` or ``User``, as a role assignment's ``principalType`` wants it.

    From the access token claims reference (https://learn.microsoft.com/entra/identity-platform/
    access-token-claims-reference): ``idtyp`` says ``app`` or ``user`` when present; otherwise only a token
    issued to a user carries ``scp`` (delegated scopes), an app-only token never does. A guest user has no
    ``upn`` but is still a user.
    """
    idtyp = str(claims.get("idtyp") or "").lower()
    if idtyp in ("app", "user"):
        return "ServicePrincipal" if idtyp == "app" else "User"
    return "User" if "scp" in claims else "ServicePrincipal"


def _first_line(e: BaseException) -> str:
    text = getattr(e, "message", None) or str(e) or type(e).__name__
    return str(text).strip().splitlines()[0][:300]
