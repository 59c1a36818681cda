"""OneDeploy: a zip package POSTed to the app's deployment (Kudu) host, and the deployment followed to its end.

Used by the Flex Consumption path (flex.py). Sources: facts.py ("zip deploy"): Kudu answers 202 Accepted and deploys
in the background; its deployment record says how it ended. A 403 while the app's new storage role propagates is
retried.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
from azure.core.rest import HttpRequest

from ..errors import DeployError
from ..progress import Progress, quiet
from . import facts
from .clients import PipelineSettings
from .clouds import suffixes_for


def scm_host(site: Any) -> str:
    """The app's deployment (Kudu) host as ARM names it (``hostNameSslStates`` of type Repository), never built
    from the app name: Azure shortens long names, and other clouds have other suffixes."""
    for state in getattr(site, "host_name_ssl_states", None) or []:
        if str(getattr(state, "host_type", "") or "").lower() == "repository" and state.name:
            return state.name
    host = site.default_host_name  # <app>.<suffix>: the deployment host is <app>.scm.<suffix>
    first, _, rest = host.partition(".")
    return f"{first}.scm.{rest}"


def backoff(attempt: int) -> float:
    """10, 20, 40, 60, 60, ... seconds."""
    return float(min(10 * 2 ** (attempt - 1), 60))


def _scm_client(host: str, credential: TokenCredential, settings: PipelineSettings) -> PipelineClient:
    retry = RetryPolicy(retry_total=settings.retry_total, retry_backoff_factor=settings.retry_backoff_factor,
                        retry_backoff_max=settings.retry_backoff_max)
    scope = suffixes_for(settings).kudu_scope  # the App Service audience, as az asks for it (clouds.py)
    return PipelineClient(f"https://{host}", policies=[retry, BearerTokenCredentialPolicy(credential, scope)],
                          **({"transport": settings.transport} if settings.transport is not None else {}))


def _deployment_id(response: Any) -> str | None:
    """The deployment id a 202 names: Kudu's SCM-DEPLOYMENT-ID header, else the body a Flex app answers."""
    header = response.headers.get(facts.KUDU_DEPLOYMENT_ID_HEADER)
    if header:
        return str(header)
    try:
        text = response.text().strip().strip('"')
    except Exception:  # noqa: BLE001 - no readable body: no id
        return None
    return text if re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", text) else None


def _status_url(response: Any, base: str, deployment_id: str | None) -> str:
    if deployment_id:
        return f"{base}/api/deployments/{deployment_id}"
    location = urljoin(f"{base}/", response.headers.get("Location") or "")
    if urlsplit(location).hostname == urlsplit(base).hostname and urlsplit(location).path.startswith("/api/"):
        return location  # never another host: the request carries the deploying credential
    return f"{base}/api/deployments/latest"


def _forbidden(result: dict[str, Any]) -> bool:
    """A failed deployment whose text says storage refused the app's identity (a role not applied yet)."""
    text = " ".join(str(result.get(k) or "") for k in ("status_text", "progress", "message")).lower()
    return "403" in text or "forbidden" in text or "not authorized" in text


def publish(archive: Path, app_name: str, *, credential: TokenCredential, settings: PipelineSettings,
            timeout: float, host: str, progress: Progress = quiet, sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic, poll_interval: float = 5.0) -> str:
    """OneDeploy: POST the zip to https://<scm host>/api/publish and follow the deployment to its end.

    Returns the deployment id. The 202 is polled (see facts.KUDU_STATUS_NAMES) with progress until Kudu says
    success, failure, or ``timeout`` passes. A 403 — on the POST, or as a failed deployment whose text says
    storage refused — is retried with backoff for up to facts.ROLE_PROPAGATION_SECONDS (the app's identity got its
    role on the deployment container moments ago).
    """
    base = f"https://{host}"
    client = _scm_client(host, credential, settings)
    started = clock()
    deadline = started + timeout
    forbidden_until = started + min(timeout, facts.ROLE_PROPAGATION_SECONDS)
    attempt = 0
    try:
        while True:
            request = HttpRequest("POST", f"{base}/api/publish", params={"type": "zip", "RemoteBuild": "false"},
                                  headers={"Content-Type": "application/zip"}, content=archive.read_bytes())
            response = client.send_request(request, connection_timeout=30, read_timeout=timeout)
            reason = ""
            if response.status_code == 403:
                reason = "answered 403"
            elif response.status_code == 200:  # Kudu ran it synchronously (RanSynchronously)
                return _deployment_id(response) or "latest"
            elif response.status_code != 202:
                raise DeployError(f"the zip deploy to {app_name} was answered {response.status_code}"
                                  + (" (another deployment is in progress)" if response.status_code == 409 else ""),
                                  hint="the signed-in principal needs Website Contributor (or Contributor) on the "
                                       f"app; deployments: {base}/api/deployments")
            else:
                deployment_id = _deployment_id(response)
                url = _status_url(response, base, deployment_id)
                result = _follow(client, url, app_name, progress=progress, sleep=sleep, clock=clock,
                                 deadline=deadline, timeout=timeout, poll_interval=poll_interval)
                deployment_id = str(result.get("id") or deployment_id or "latest")
                status = result.get("status")
                if status == facts.KUDU_SUCCESS:
                    progress(f"    package of {app_name}: deployed (deployment {deployment_id})")
                    return deployment_id
                log_url = result.get("log_url") or f"{base}/api/deployments/{deployment_id}/log"
                name = facts.KUDU_STATUS_NAMES.get(status, str(status)) if isinstance(status, int) else str(status)
                text = result.get("status_text") or result.get("progress") or ""
                if not _forbidden(result):
                    raise DeployError(f"the zip deploy to {app_name} failed: Kudu deployment {deployment_id} "
                                      f"ended {name}" + (f" ({text})" if text else ""),
                                      hint=f"read its log: {log_url}")
                reason = f"failed: storage refused the app's identity ({text or name}); log {log_url}"
            attempt += 1
            wait = backoff(attempt)
            if clock() + wait > forbidden_until:
                raise DeployError(f"the zip deploy to {app_name} {reason}, still after "
                                  f"{clock() - started:.0f} s and {attempt} attempt(s)",
                                  hint="a 403 right after the roles were granted is their propagation (minutes); "
                                       "past that: the deploying principal needs Website Contributor (or "
                                       "Contributor) on the app, and the app's identity Storage Blob Data Owner "
                                       "on the deployment container's account. Deploy again.")
            progress(f"    package of {app_name}: the zip deploy {reason}; a role granted moments ago takes "
                     f"minutes to apply: retry {attempt} in {wait:.0f} s")
            sleep(wait)
    finally:
        if settings.transport is None:  # a transport the caller gave stays theirs
            client.close()


def _follow(client: PipelineClient, url: str, app_name: str, *, progress: Progress, sleep: Callable[[float], None],
            clock: Callable[[], float], deadline: float, timeout: float, poll_interval: float) -> dict[str, Any]:
    """Poll Kudu's deployment record until it is complete; returns it (success or failure)."""
    last = ""
    started = clock()
    while True:
        response = client.send_request(HttpRequest("GET", url), connection_timeout=30, read_timeout=60)
        result: dict[str, Any] = {}
        if response.status_code == 200:
            try:
                loaded = response.json()
            except ValueError:
                loaded = None
            result = loaded if isinstance(loaded, dict) else {}
        elif response.status_code in (401, 403):
            raise DeployError(f"the deployment status of {app_name} was answered {response.status_code}",
                              hint=f"the signed-in principal needs Website Contributor (or Contributor) on the app; "
                                   f"status: {url}")
        # 202/404: the record is not visible yet; keep polling
        status = result.get("status")
        if status == facts.KUDU_SUCCESS or status in facts.KUDU_FAILURES:
            return result
        if result.get("complete") is True and status is not None:
            return result
        name = facts.KUDU_STATUS_NAMES.get(status, "Pending") if isinstance(status, int) or status is None \
            else str(status)
        text = result.get("status_text") or result.get("progress") or ""
        note = name + (f": {text}" if text and text != name else "")
        elapsed = clock() - started
        if note != last:
            progress(f"    package of {app_name}: {note} ({elapsed:.0f} s)")
            last = note
        if clock() > deadline:
            raise DeployError(f"the zip deploy to {app_name} did not finish within {timeout:.0f} s (Kudu says: "
                              f"{note})", hint=f"follow it at {url}; raise --timeout; deploying again re-sends "
                                                "the package")
        sleep(poll_interval)
