"""One way to open a storage account, shared by the local host and the round-trip test."""

from __future__ import annotations

from azure.storage.blob import BlobServiceClient, ExponentialRetry

from .errors import StorageError


def blob_service(connection_string: str, *, transport: object = None) -> BlobServiceClient:
    """A client for any storage connection string (Azurite or Azure) with short, bounded retries.

    The SDK's default retry waits 15 s and more between tries; an unreachable account should fail in
    seconds with a clear message instead.
    """
    try:
        return BlobServiceClient.from_connection_string(
            connection_string, connection_timeout=5, read_timeout=30,
            retry_policy=ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=2,
                                          random_jitter_range=0.2), **_transport(transport))
    except ValueError as e:
        raise StorageError(f"the storage connection string is invalid: {e}",
                           hint="use the account's connection string (DefaultEndpointsProtocol=...;AccountName=...)"
                           ) from None


def blob_service_for(account_url: str, credential: object, *, transport: object = None) -> BlobServiceClient:
    """A client for ``account_url`` signed in with ``credential`` (identity, no key), with the same retries."""
    return BlobServiceClient(account_url, credential=credential, connection_timeout=5, read_timeout=30,
                             retry_policy=ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=2,
                                                           random_jitter_range=0.2), **_transport(transport))


def _transport(transport: object) -> dict[str, object]:
    """``transport=`` for the client when one is given (an azure-core HttpTransport, e.g. through a proxy)."""
    return {"transport": transport} if transport is not None else {}


def describe(service: BlobServiceClient) -> str:
    """The account name and endpoint: safe to print (no key, no SAS)."""
    return f"{service.account_name} at {service.primary_endpoint}"
