"""Signing in from a GitHub Actions job: the workflow's OIDC ID token as the client assertion.

With ``permissions: id-token: write`` the runner sets ``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``_TOKEN``; the ID token
for the audience ``api://AzureADTokenExchange`` is then the client assertion of a ``ClientAssertionCredential``
(tenant and client id from the arguments or ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``): no stored secret. Elsewhere
the core's choice applies (:func:`modelfunc.azure.credentials.get_credential`). The CLI signs in through here too,
so `modelfunc deploy` in a workflow's ``run:`` uses the job's token as the action does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import CredentialError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from ..azure.clouds import Cloud

AUDIENCE = "api://AzureADTokenExchange"


def in_github_oidc(env: Mapping[str, str]) -> bool:
    return bool(env.get("ACTIONS_ID_TOKEN_REQUEST_URL") and env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))


def github_id_token(*, audience: str = AUDIENCE, env: Mapping[str, str] | None = None, timeout: float = 30.0) -> str:
    """The workflow's OIDC ID token for ``audience`` (what actions/core getIDToken does)."""
    from ..azure.credentials import SETUP_HINT

    env = os.environ if env is None else env
    url, bearer = env.get("ACTIONS_ID_TOKEN_REQUEST_URL", ""), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    if not url or not bearer:
        raise CredentialError("this job cannot request a GitHub OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN "
                              "are not set)", hint="give the job `permissions: id-token: write`")
    try:
        # The URL already has a query (api-version): the audience is added to it, not put in its place.
        resp = httpx.get(httpx.URL(url).copy_merge_params({"audience": audience}),
                         headers={"Authorization": f"bearer {bearer}"}, timeout=timeout)
    except httpx.HTTPError as e:
        raise CredentialError(f"the GitHub OIDC token request failed: {type(e).__name__}",
                              hint="retry the job; GitHub's token service was not reachable") from None
    if resp.status_code != 200:
        raise CredentialError(f"the GitHub OIDC token request was answered {resp.status_code}",
                              hint="give the job `permissions: id-token: write`")
    try:
        value = resp.json()["value"]
    except (ValueError, KeyError, TypeError):
        raise CredentialError("the GitHub OIDC token answer has no 'value'", hint=SETUP_HINT) from None
    if not isinstance(value, str) or not value:
        raise CredentialError("the GitHub OIDC token answer is empty", hint=SETUP_HINT)
    return value


def assertion(env: Mapping[str, str] | None = None) -> Callable[[], str] | None:
    """The job's ID-token getter when this job may request one, else None."""
    env = os.environ if env is None else env
    return (lambda: github_id_token(env=env)) if in_github_oidc(env) else None


def credential(tenant_id: str | None = None, client_id: str | None = None, cloud: Cloud | None = None, *,
               env: Mapping[str, str] | None = None, **kwargs: Any) -> TokenCredential:
    """The credential for the tenant/client given (the ``tenant-id``/``client-id`` inputs, ``--tenant-id``/
    ``--client-id``): the job's OIDC assertion when there is one, else the core's choice. ``kwargs`` (e.g.
    ``transport``) go to the credential."""
    from ..azure import credentials

    return credentials.get_credential(tenant_id=tenant_id or None, client_id=client_id or None, cloud=cloud, env=env,
                                      assertion=assertion(env), **kwargs)
