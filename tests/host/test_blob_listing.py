"""The blob scan's listing (generator/modelfunc/localhost/blobscan.py) on real Azurite: the page it reads from the
service's XML through the storage SDK's pipeline is the page the SDK's public pager gives, marker for marker; and
where an SDK release keeps its pipeline elsewhere, the scan falls back to that pager instead of failing."""

from __future__ import annotations

import uuid

import pytest
from azure.storage.blob import BlobServiceClient
from modelfunc.localhost import blobscan

pytestmark = pytest.mark.azurite
PREFIX = "input/"


@pytest.fixture
def container(azurite):  # noqa: ANN001, ANN201
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = storage.create_container(f"listing-{uuid.uuid4().hex[:12]}")
    for name in ["input/a.json", "input/b&c.json", "input/d e.json", "input/ü.json", "input/z.json", "other/x.json"]:
        client.upload_blob(name, b"{}")
    yield client
    client.delete_container()


def every_page(list_page, container, prefix: str) -> list[tuple[list[tuple[str, str, int]], str | None]]:  # noqa: ANN001
    pages, marker = [], None
    while True:
        items, marker, clock = list_page(container, prefix, marker, page_size=2)
        assert clock > 0
        pages.append(([(i.name, i.etag, int(i.modified)) for i in items], marker))
        if marker is None:
            return pages


def test_the_scans_page_is_the_sdks_page_marker_for_marker(container) -> None:  # noqa: ANN001
    ours = every_page(blobscan.list_page, container, PREFIX)
    theirs = every_page(blobscan.list_page_sdk, container, PREFIX)
    assert ours == theirs
    names = [name for items, _ in ours for name, _, _ in items]
    assert names == ["input/a.json", "input/b&c.json", "input/d e.json", "input/z.json", "input/ü.json"]
    assert [len(items) for items, _ in ours] == [2, 2, 1]
    etags = {name: props.etag.strip('"') for name, props in
             ((b.name, b) for b in container.list_blobs(name_starts_with="input/"))}
    assert all(etag == etags[name] for items, _ in ours for name, etag, _ in items)


def test_without_the_sdks_pipeline_the_scan_lists_through_the_public_pager(container, monkeypatch) -> None:  # noqa: ANN001
    assert blobscan._pipeline(container) is not None  # this SDK release: the fast path is the one in use
    expected = every_page(blobscan.list_page, container, PREFIX)
    # A release whose generated client keeps no pipeline at that place (its operations keep their own reference).
    monkeypatch.setattr(container._client, "_client", object())
    assert blobscan._pipeline(container) is None
    assert every_page(blobscan.list_page, container, PREFIX) == expected
