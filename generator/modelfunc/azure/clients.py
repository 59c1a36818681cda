"""The Azure SDK management clients modelfunc uses, built once with the same pipeline settings.

Every client gets the same ``transport`` (tests inject one), the same cloud (its ARM endpoint and token
scope; none set: the SDK's public-cloud defaults; see :mod:`modelfunc.azure.clouds`), retry settings
(azure-core's RetryPolicy retries 408/429/500/502/503/504 with exponential backoff and honours
``Retry-After``) and LRO polling interval. :func:`arm_call` turns SDK errors into modelfunc errors that say what failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.eventgrid import EventGridManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.servicebus import ServiceBusManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.web import WebSiteManagementClient

from ..errors import CredentialError, DeployError
from .clouds import Cloud, suffixes_for
from .credentials import SETUP_HINT

T = TypeVar("T")


@dataclass(frozen=True)
class PipelineSettings:
    """How every client talks to Azure. ``retry_backoff_factor=0`` (tests) retries without sleeping."""

    retry_total: int = 6
    retry_backoff_factor: float = 1.0
    retry_backoff_max: float = 60.0
    polling_interval: float = 10.0
    transport: Any = None  # an azure.core.pipeline.transport.HttpTransport; None: the default (requests)
    cloud: Cloud | None = None  # None: the SDK's defaults (the public cloud); see modelfunc.azure.clouds

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"retry_total": self.retry_total, "retry_backoff_factor": self.retry_backoff_factor,
                               "retry_backoff_max": self.retry_backoff_max, "polling_interval": self.polling_interval}
        if self.transport is not None:
            out["transport"] = self.transport
        if self.cloud is not None:
            out["base_url"] = self.cloud.arm_endpoint
            out["credential_scopes"] = [self.cloud.arm_scope]
        return out


def default_settings() -> PipelineSettings:
    """The settings the CLI uses (a test replaces this to inject its transport)."""
    return PipelineSettings()


class _OfTheSubscription(Generic[T]):
    """``clients.web``: the client of the deployment's subscription, built on first use (``Clients.client``)."""

    def __init__(self, cls: type[T]) -> None:
        self.cls = cls

    def __get__(self, clients: Clients, owner: type | None = None) -> T:
        return clients.client(self.cls)


@dataclass
class Clients:
    credential: TokenCredential
    subscription_id: str
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    _cache: dict[tuple[type, str], Any] = field(default_factory=dict)

    @property
    def cloud(self) -> Cloud:
        """The cloud these clients talk to: the settings' one, else the public cloud (no network call)."""
        return suffixes_for(self.settings)

    def client(self, cls: type[T], subscription_id: str | None = None) -> T:
        """The client of ``cls`` for a subscription (default: the deployment's), built once."""
        key = (cls, subscription_id or self.subscription_id)
        if key not in self._cache:
            self._cache[key] = cls(self.credential, key[1], **self.settings.kwargs())
        return self._cache[key]

    resource = _OfTheSubscription(ResourceManagementClient)
    storage = _OfTheSubscription(StorageManagementClient)
    web = _OfTheSubscription(WebSiteManagementClient)
    eventgrid = _OfTheSubscription(EventGridManagementClient)
    msi = _OfTheSubscription(ManagedServiceIdentityClient)
    servicebus = _OfTheSubscription(ServiceBusManagementClient)

    def authorization(self, subscription_id: str | None = None) -> AuthorizationManagementClient:
        """Role assignments: on the registry, which may be in another subscription."""
        return self.client(AuthorizationManagementClient, subscription_id)

    def registry(self, subscription_id: str | None = None) -> ContainerRegistryManagementClient:
        return self.client(ContainerRegistryManagementClient, subscription_id)

    def close(self) -> None:
        for client in self._cache.values():
            client.close()
        self._cache.clear()


def _reason(e: HttpResponseError) -> str:
    error = getattr(e, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
    status = getattr(e, "status_code", None)
    return f"{status or ''} {code + ': ' if code else ''}{message}".strip()[:500]


def read_or_none(fn: Any, *args: Any, what: str, **kwargs: Any) -> Any:
    """A read (``fn(*args, **kwargs)``): the resource, or None when it does not exist; other failures name ``what``."""
    with arm_call(f"read {what}"):
        try:
            return fn(*args, **kwargs)
        except ResourceNotFoundError:
            return None


@contextlib.contextmanager
def arm_call(what: str) -> Iterator[None]:
    """Run ARM calls for ``what`` (e.g. "create storage account x"); failures become DeployError/CredentialError."""
    try:
        yield
    except ClientAuthenticationError as e:
        raise CredentialError(f"{what}: Azure refused the credential ({_reason(e)})", hint=SETUP_HINT) from None
    except ResourceNotFoundError:
        raise
    except HttpResponseError as e:
        status = getattr(e, "status_code", None)
        if status == 403:
            raise DeployError(f"{what}: not allowed ({_reason(e)})",
                              hint="the signed-in principal needs Contributor and User Access Administrator "
                                   "(or Owner) on the subscription or resource group") from None
        raise DeployError(f"{what} failed: {_reason(e)}") from None
    except (ServiceRequestError, ServiceResponseError) as e:
        raise DeployError(f"{what}: Azure could not be reached ({type(e).__name__})",
                          hint="check the network; the request was retried") from None
