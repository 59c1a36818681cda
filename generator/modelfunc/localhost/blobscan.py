"""The blob trigger's container scan: pages with a continuation marker, a watermark, and backoff when idle.

As the Functions host's ``ScanBlobScanLogHybridPollingStrategy`` (its ``ContainerScanInfo``), scaled to one process:

* a *sweep* lists the container (by the pattern's literal prefix) page by page, carrying the continuation marker
  from one poll to the next, each poll bounded by a time budget;
* only blobs last modified at or after the watermark less ``OVERLAP`` are candidates; the others were handled by
  an earlier sweep and cost a regular expression each (the listing is parsed from its XML, not deserialized into
  SDK objects, which cost ten times more per blob);
* a finished sweep moves the watermark to the storage clock's time when it began (the ``Date`` of its first page,
  less the page's round trip), held back by any blob still being scored or waiting for a retry, so a blob written
  during a sweep is a candidate of the next;
* after a sweep that found nothing the wait doubles up to ``max_interval``, and is at least long enough that the
  sweeps take no more than ``IDLE_CPU_SHARE`` of a core (measured: the scanning thread's CPU time); anything found
  brings it back to ``poll_interval``.

Times are the storage service's own (``Last-Modified``, ``Date``), never this machine's clock, so clock skew does
not matter; ``OVERLAP`` covers their one-second granularity. Within it, blobs seen again are told apart by their
ETag (the receipts).
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.storage.blob import ContainerClient

OVERLAP = 3.0  # seconds before the watermark still looked at: Last-Modified's granularity, slow listings
IDLE_CPU_SHARE = 0.03  # idle sweeps take at most this share of one core
MAX_INTERVAL = 0.5  # the longest wait between idle sweeps of a small container (a dear sweep waits longer)
PAGE_SIZE = 5000  # the service's largest page
POLL_BUDGET = 0.25  # seconds of listing per poll; the sweep goes on from its marker at the next

_BLOB = re.compile(rb"<Blob><Name( Encoded=\"true\")?>([^<]*)</Name>.*?<Last-Modified>([^<]*)</Last-Modified>"
                   rb".*?<Etag>([^<]*)</Etag>", re.S)
_NEXT = re.compile(rb"<NextMarker>([^<]*)</NextMarker>")


@dataclass(frozen=True)
class Listed:
    name: str
    etag: str  # without quotes
    modified: float  # Last-Modified, seconds since the epoch (storage clock)


@lru_cache(maxsize=4096)
def http_time(value: bytes | str) -> float:
    text = value.decode() if isinstance(value, bytes) else value
    return parsedate_to_datetime(text).timestamp()


def _text(raw: bytes, encoded: bool) -> str:
    text = raw.decode("utf-8")
    if "&" in text:
        text = html.unescape(text)
    return unquote(text) if encoded else text


def parse_listing(body: bytes) -> tuple[list[Listed], str | None]:
    """The blobs of one List Blobs page and its continuation marker (None at the end)."""
    items = [Listed(_text(m.group(2), bool(m.group(1))), m.group(4).decode().strip('"'), http_time(m.group(3)))
             for m in _BLOB.finditer(body)]
    nxt = _NEXT.search(body)
    marker = _text(nxt.group(1), False) if nxt and nxt.group(1) else None
    return items, marker


def _pipeline(container: ContainerClient) -> Any:
    """The storage SDK's own pipeline behind the container client (its auth, retries and logging), or None where an
    SDK release keeps it elsewhere: it is no public attribute."""
    inner = getattr(getattr(container, "_client", None), "_client", None)
    return inner if callable(getattr(inner, "send_request", None)) else None


def list_page_sdk(container: ContainerClient, prefix: str | None, marker: str | None,
                  page_size: int = PAGE_SIZE) -> tuple[list[Listed], str | None, float]:
    """:func:`list_page` through the SDK's public pager: the same page, at about ten times the CPU per blob, and
    stamped with this machine's clock (the ``Date`` header is not handed out)."""
    pages = container.list_blobs(name_starts_with=prefix, results_per_page=page_size).by_page(continuation_token=marker)
    sent = time.time()
    items = [Listed(b.name, (b.etag or "").strip('"'), b.last_modified.timestamp()) for b in next(pages)]
    return items, pages.continuation_token or None, sent


def list_page(container: ContainerClient, prefix: str | None, marker: str | None,
              page_size: int = PAGE_SIZE) -> tuple[list[Listed], str | None, float]:
    """One page: (blobs, next marker, the storage clock when the request was sent). The request goes through the
    SDK's pipeline and its XML is read here, ten times cheaper than SDK objects; :func:`list_page_sdk` if the
    pipeline is not where this SDK release was seen to keep it."""
    pipeline = _pipeline(container)
    if pipeline is None:
        return list_page_sdk(container, prefix, marker, page_size)
    params = {"restype": "container", "comp": "list", "maxresults": str(page_size)}
    # azure-core takes query values already quoted (as the generated client quotes them): a marker or prefix with
    # `&` or `+` in it would otherwise be sent as another parameter or a space, and the request's signature fail.
    if prefix:
        params["prefix"] = quote(prefix, safe="")
    if marker:
        params["marker"] = quote(marker, safe="")
    request = HttpRequest("GET", container.url, params=params, headers={"x-ms-version": container.api_version})
    sent = time.monotonic()
    response = pipeline.send_request(request)
    if response.status_code >= 300:
        error = {401: ClientAuthenticationError, 403: ClientAuthenticationError,
                 404: ResourceNotFoundError}.get(response.status_code, HttpResponseError)
        code = response.headers.get("x-ms-error-code", "")
        raise error(message=f"listing {container.container_name}: {response.status_code} {response.reason} {code}"
                    .strip(), response=response)
    items, nxt = parse_listing(response.read())
    date = response.headers.get("Date")
    now = http_time(date) - (time.monotonic() - sent) if date else time.time()
    return items, nxt, now


@dataclass
class ScanState:
    """Where the sweep is, what the last finished one established, and how long to wait before the next poll."""

    poll_interval: float
    max_interval: float = MAX_INTERVAL
    watermark: float | None = None  # every blob modified before this (less OVERLAP) was handled
    marker: str | None = None  # continuation of the sweep under way
    sweep_started: float | None = None  # storage clock when the sweep under way sent its first page
    sweep_cpu: float = 0.0  # the scanning thread's CPU time in the sweep under way
    found_in_sweep: int = 0
    interval: float = 0.0
    sweeps: int = 0
    listed: int = 0
    last_sweep_cpu: float = 0.0
    hinted: int = 0  # blobs the storage log started before a sweep found them (blobs.BlobListener._follow)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interval = self.poll_interval
        self.max_interval = max(self.max_interval, self.poll_interval)

    def is_candidate(self, modified: float) -> bool:
        return self.watermark is None or modified >= self.watermark - OVERLAP

    def begin_page(self, server_now: float) -> None:
        if self.sweep_started is None:
            self.sweep_started = server_now

    def end_sweep(self, held_back: float | None) -> float:
        """The sweep reached the end: the new watermark (not past a blob still unsettled)."""
        assert self.sweep_started is not None
        mark = self.sweep_started if held_back is None else min(self.sweep_started, held_back)
        self.watermark = mark
        self.sweeps += 1
        self.last_sweep_cpu = self.sweep_cpu
        self.marker, self.sweep_started, self.sweep_cpu = None, None, 0.0
        return self.watermark

    def activity(self) -> None:
        """Something to do: poll fast again."""
        self.interval = self.poll_interval

    def next_wait(self, *, busy: bool, mid_sweep: bool) -> float:
        """Seconds to wait before the next poll."""
        if busy:
            self.interval = self.poll_interval
        if busy or mid_sweep:
            return self.poll_interval
        self.interval = min(self.interval * 2, self.max_interval)
        return max(self.interval, self.last_sweep_cpu / IDLE_CPU_SHARE)
