"""Blob receipts and the scan watermark, kept in the host storage account like the Functions host's.

* a receipt per (blob name, ETag) at
  ``azure-webjobs-hosts/blobreceipts/<host-id>/<function>/<etag>/<container>/<blob>``,
  its metadata ``status`` (``pending`` while tried, ``ok``, ``poison``) and ``attempts``;
* the scan info at ``azure-webjobs-hosts/blobscaninfo/<host-id>/<function>/<container>/scanInfo``: ``LatestScan``,
  the storage clock's time up to which every blob of the container was handled (as the host's ContainerScanInfo).
  A restarted host trusts blobs last modified before it (less an overlap) and reads receipts only for later ones,
  so neither its start nor its memory grows with the number of blobs ever processed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

RECEIPTS_CONTAINER = "azure-webjobs-hosts"


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


class ReceiptStore:
    """The receipts and scan info of one function's trigger container, for one host id."""

    def __init__(self, service: BlobServiceClient, host_id: str, function: str, container: str,
                 on_recreate: Callable[[], None] | None = None) -> None:
        self.service = service
        self.host_id = host_id
        self.function = function
        self.container = container
        self._on_recreate = on_recreate

    @property
    def prefix(self) -> str:
        return f"blobreceipts/{self.host_id}/{self.function}/"

    def name(self, blob: str, etag: str) -> str:
        return f"{self.prefix}{etag.strip(chr(34))}/{self.container}/{blob}"

    @property
    def scan_info_name(self) -> str:
        return f"blobscaninfo/{self.host_id}/{self.function}/{self.container}/scanInfo"

    def ensure_container(self) -> None:
        try:
            self.service.get_container_client(RECEIPTS_CONTAINER).create_container()
        except ResourceExistsError:
            pass

    def load_all(self) -> tuple[set[tuple[str, str]], dict[tuple[str, str], int]]:
        """Every receipt of this host id and function: (done keys, pending keys -> attempts). Read once, when the
        container was never scanned to the end by this host id (no scan info): e.g. the first start after an
        upgrade from a host that kept no scan info."""
        done: set[tuple[str, str]] = set()
        pending: dict[tuple[str, str], int] = {}
        container = self.service.get_container_client(RECEIPTS_CONTAINER)
        for item in container.list_blobs(name_starts_with=self.prefix, include=["metadata"]):
            etag, _, path = item.name[len(self.prefix):].partition("/")
            _, _, blob = path.partition("/")
            metadata = item.metadata or {}
            if metadata.get("status") == "pending":
                pending[(blob, etag)] = _int(metadata.get("attempts"), 1)
            else:
                done.add((blob, etag))
        return done, pending

    def read(self, blob: str, etag: str) -> tuple[str, int] | None:
        """(status, attempts) of the receipt for this version of ``blob``, or None when there is none."""
        client = self.service.get_blob_client(RECEIPTS_CONTAINER, self.name(blob, etag))
        try:
            metadata = client.get_blob_properties().metadata or {}
        except ResourceNotFoundError:
            return None
        return metadata.get("status") or "ok", _int(metadata.get("attempts"), 1)

    def write(self, blob: str, etag: str, status: str, attempts: int) -> None:
        """Write (overwrite) the receipt; the receipts container is created again when it was deleted."""
        self._upload(self.name(blob, etag), b"", {"status": status, "attempts": str(attempts)})

    def _upload(self, name: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
        client = self.service.get_blob_client(RECEIPTS_CONTAINER, name)
        try:
            client.upload_blob(body, overwrite=True, metadata=metadata)
        except ResourceNotFoundError:  # the receipts container was deleted while serving: create it again
            if self._on_recreate:
                self._on_recreate()
            self.ensure_container()
            client.upload_blob(body, overwrite=True, metadata=metadata)

    def load_scan_info(self) -> float | None:
        """The watermark (storage clock, seconds since the epoch) saved by the last complete scan, or None."""
        client = self.service.get_blob_client(RECEIPTS_CONTAINER, self.scan_info_name)
        try:
            data: Any = json.loads(client.download_blob().readall())
            return datetime.fromisoformat(str(data["LatestScan"]).replace("Z", "+00:00")).timestamp()
        except ResourceNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):  # unreadable: scan as if there were none (receipts decide)
            return None

    def save_scan_info(self, watermark: float) -> None:
        stamp = datetime.fromtimestamp(watermark, tz=timezone.utc).isoformat().replace("+00:00", "Z")
        try:
            self._upload(self.scan_info_name, json.dumps({"LatestScan": stamp}).encode())
        except AzureError:
            pass  # only a restart's first scan is dearer without it: receipts still decide
