"""Blob trigger listener: container scan, output bindings, blob receipts, retries and poison records.

It behaves like the Functions host's ``LogsAndContainerScan`` listener, scaled down to one process:

* it lists the trigger container (by the pattern's literal prefix) every ``poll_interval`` seconds;
* a blob is new when there is no receipt for its name *and* ETag, so an overwritten blob is scored
  again and an unchanged one never is, across restarts: receipts live in the host storage account at
  ``azure-webjobs-hosts/blobreceipts/<host-id>/<function>/<etag>/<container>/<blob>`` like the host's;
* each output binding the function ``set()`` is uploaded to its path with the trigger's placeholders;
* a function that raises is retried up to ``poison_threshold`` times, then a poison receipt is written
  and the failure logged, instead of retrying for ever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

from ..blobpath import BlobPath
from ..errors import HostError
from ..storage import blob_service
from .loader import LoadedFunction

logger = logging.getLogger("modelfunc.host.blob")
RECEIPTS_CONTAINER = "azure-webjobs-hosts"


class Out:
    """The host side of ``azure.functions.Out``: holds what the function set."""

    def __init__(self) -> None:
        self.value: Any = None
        self.is_set = False

    def set(self, value: Any) -> None:
        self.value, self.is_set = value, True

    def get(self) -> Any:
        return self.value


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"an output binding was set to a {type(value).__name__}; use bytes or str")


def resolve_connection(settings: dict[str, str], name: str) -> str:
    """The connection string behind an app setting name (as the host resolves ``connection``)."""
    for key in (name, f"AzureWebJobs{name}") if name else ("AzureWebJobsStorage",):
        value = settings.get(key)
        if value:
            return value
    raise HostError(
        f"app setting {name or 'AzureWebJobsStorage'!r} is not set, so the blob trigger has no storage account",
        hint="pass --connection-string (any storage connection string), set it in local.settings.json, "
        "or let `modelfunc serve` start the embedded Azurite",
    )


@dataclass
class Stats:
    scored: int = 0
    failed: int = 0
    retried: int = 0
    poisoned: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # the recent ones only

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        p50 = lat[len(lat) // 2] if lat else None
        return {"scored": self.scored, "failed": self.failed, "retried": self.retried,
                "poisoned": self.poisoned, "p50_ms": p50}


class BlobListener:
    def __init__(self, function: LoadedFunction, settings: dict[str, str], *, host_id: str,
                 poll_interval: float = 0.2, workers: int = 4, poison_threshold: int = 5,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.function = function
        self.path = BlobPath.parse(function.trigger.data["path"])
        conn = resolve_connection(settings, function.trigger.data.get("connection", ""))
        self.service = blob_service(conn)
        host_conn = settings.get("AzureWebJobsStorage") or conn
        if host_conn.strip().lower() == "usedevelopmentstorage=true" and conn.strip().lower() != host_conn.lower():
            host_conn = conn  # local.settings.json default, overridden by an explicit trigger connection
        self.receipts_service = blob_service(host_conn)
        self.outputs = []
        for binding in function.outputs:
            if binding.type != "blob":
                raise HostError(f"function {function.name}: output binding type {binding.type!r} is not "
                                "supported by the local host (blob outputs are)")
            out_conn = resolve_connection(settings, binding.data.get("connection", ""))
            self.outputs.append((binding.name, BlobPath.parse(binding.data["path"]), blob_service(out_conn)))
        self.host_id = host_id
        self.poll_interval = poll_interval
        self.poison_threshold = poison_threshold
        self.stats = Stats()
        self._receipts: set[tuple[str, str]] = set()
        self._attempts: dict[tuple[str, str], int] = {}
        self._inflight: dict[tuple[str, str], Future[None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"blob-{function.name}")
        self._thread: threading.Thread | None = None
        self._on_error = on_error
        self.last_error: str | None = None

    # ------------------------------------------------------------------ receipts

    @property
    def _receipt_prefix(self) -> str:
        return f"blobreceipts/{self.host_id}/{self.function.name}/"

    def _receipt_name(self, name: str, etag: str) -> str:
        return f"{self._receipt_prefix}{etag.strip(chr(34))}/{self.path.container}/{name}"

    def _load_receipts(self) -> None:
        container = self.receipts_service.get_container_client(RECEIPTS_CONTAINER)
        try:
            container.create_container()
        except ResourceExistsError:
            pass
        prefix = self._receipt_prefix
        for item in container.list_blobs(name_starts_with=prefix):
            rest = item.name[len(prefix):]
            etag, _, path = rest.partition("/")
            _, _, name = path.partition("/")
            self._receipts.add((name, etag))
        logger.info("%s: %d blob receipt(s) loaded", self.function.name, len(self._receipts))

    def _write_receipt(self, name: str, etag: str, status: str) -> None:
        blob = self.receipts_service.get_blob_client(RECEIPTS_CONTAINER, self._receipt_name(name, etag))
        blob.upload_blob(b"", overwrite=True, metadata={"status": status})
        with self._lock:
            self._receipts.add((name, etag.strip('"')))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        try:
            for svc, container in [(self.service, self.path.container),
                                   *[(svc, p.container) for _, p, svc in self.outputs]]:
                try:
                    svc.get_container_client(container).create_container()
                except ResourceExistsError:
                    pass
            self._load_receipts()
        except AzureError as e:
            raise HostError(f"function {self.function.name}: cannot reach the storage account: "
                            f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
        self._thread = threading.Thread(target=self._loop, name=f"listen-{self.function.name}", daemon=True)
        self._thread.start()
        logger.info("%s: listening to %s (every %.2fs)", self.function.name, self.path.pattern, self.poll_interval)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling, and let blobs already being scored finish (so none is lost or scored twice)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        reported = False
        while not self._stop.is_set():
            try:
                self.poll_once()
                if reported:
                    logger.info("%s: storage reachable again", self.function.name)
                reported = False
                self.last_error = None
            except AzureError as e:
                self.last_error = f"{type(e).__name__}: {str(e).splitlines()[0]}"
                if not reported:
                    logger.error("%s: listing %s failed: %s (retrying)", self.function.name,
                                 self.path.container, self.last_error)
                    reported = True
            self._stop.wait(self.poll_interval)

    def poll_once(self) -> int:
        """List the container once and start scoring every new blob; returns how many were started."""
        container = self.service.get_container_client(self.path.container)
        started = 0
        for item in container.list_blobs(name_starts_with=self.path.prefix or None):
            key = (item.name, (item.etag or "").strip('"'))
            with self._lock:
                if key in self._receipts or key in self._inflight:
                    continue
            values = self.path.match(item.name)
            if values is None:
                continue
            with self._lock:
                self._inflight[key] = self._pool.submit(self._process, item.name, key[1], values)
            started += 1
        return started

    # ------------------------------------------------------------------ one blob

    def _process(self, name: str, etag: str, values: dict[str, str]) -> None:
        key = (name, etag)
        try:
            if self._stop.is_set():
                return
            blob = self.service.get_blob_client(self.path.container, name)
            try:
                downloader = blob.download_blob(etag=f'"{etag}"', match_condition=_if_match())
                data = downloader.readall()
                props = downloader.properties
            except ResourceNotFoundError:
                return  # deleted before we got to it
            except AzureError as e:
                if getattr(e, "status_code", None) == 412:
                    return  # overwritten since listing: the new version is picked up next poll
                raise
            stream = func.blob.InputStream(
                data=data, name=f"{self.path.container}/{name}", uri=blob.url, length=len(data),
                blob_properties={"ContentType": props.content_settings.content_type, "ETag": etag},
                metadata=dict(props.metadata or {}))
            outs = {binding_name: Out() for binding_name, _, _ in self.outputs}
            started = time.perf_counter()
            try:
                self.function.user_function(**{self.function.trigger.name: stream}, **outs)
            except Exception as e:  # noqa: BLE001 - user code: retried, then poisoned
                self._failed(name, etag, e)
                return
            for binding_name, path, svc in self.outputs:
                out = outs[binding_name]
                if out.is_set and out.value is not None:
                    svc.get_blob_client(path.container, path.format(values)).upload_blob(
                        as_bytes(out.value), overwrite=True)
            self._write_receipt(name, etag, "ok")
            with self._lock:
                self.stats.scored += 1
                self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            logger.info("%s: scored %s/%s in %.1f ms", self.function.name, self.path.container, name,
                        (time.perf_counter() - started) * 1000)
        except AzureError as e:
            # Storage failed mid-way: no receipt, so the blob is tried again on a later poll.
            self.last_error = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            logger.error("%s: storage error while handling %s: %s", self.function.name, name, self.last_error)
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _failed(self, name: str, etag: str, error: Exception) -> None:
        key = (name, etag)
        with self._lock:
            self._attempts[key] = attempts = self._attempts.get(key, 0) + 1
            self.stats.failed += 1
        logger.error("%s: %s raised on %s (attempt %d of %d): %s: %s", self.function.name,
                     self.function.name, name, attempts, self.poison_threshold, type(error).__name__, error)
        if attempts >= self.poison_threshold:
            self._write_receipt(name, etag, "poison")
            with self._lock:
                self.stats.poisoned += 1
            message = (f"{self.function.name}: gave up on {self.path.container}/{name} after {attempts} attempts "
                       "(poison receipt written)")
            logger.error(message)
            if self._on_error:
                self._on_error(message)
        else:
            with self._lock:
                self.stats.retried += 1

    def invoke(self, blob_path: str) -> None:
        """Score one named blob now (the admin API's invoke for a blob function)."""
        container, _, name = blob_path.partition("/")
        if container != self.path.container or self.path.match(name) is None:
            raise HostError(f"{blob_path!r} does not match the trigger path {self.path.pattern!r}")
        props = self.service.get_blob_client(container, name).get_blob_properties()
        self._process(name, (props.etag or "").strip('"'), self.path.match(name) or {})


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
