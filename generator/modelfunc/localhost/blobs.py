"""Blob trigger listener: container scan, output bindings, blob receipts, retries and the poison queue.

It behaves like the Functions host's ``LogsAndContainerScan`` listener, scaled down to one process:

* it scans the trigger container (by the pattern's literal prefix) incrementally (``blobscan``): pages with a
  continuation marker and a time budget per poll, only blobs modified since the last finished sweep (less an
  overlap) looked at, and a wait that grows while nothing happens (to ``blobscan.MAX_INTERVAL``, or more when a
  sweep is dear) and is ``poll_interval`` again as soon as something does; while the workers have a backlog, the
  sweep waits (it would only find more work for them);
* beside the scans, as the host reads the storage analytics logs, the access log of an Azurite modelfunc started
  (``accesslog``) names the blobs written: each is looked at within ``LOG_INTERVAL`` (its ETag read, then as a
  listed blob), so a new blob does not wait for the next sweep, however long the container's history;
* a blob is new when there is no receipt for its name *and* ETag, so an overwritten blob is scored
  again and an unchanged one never is, across restarts: receipts live in the host storage account at
  ``azure-webjobs-hosts/blobreceipts/<host-id>/<function>/<etag>/<container>/<blob>`` like the host's,
  with the host id of the app (and slot) so that two apps on one account never share them; beside them the scan
  info (``receipts``) keeps the watermark, so a restarted host reads receipts only for blobs modified after it,
  and keeps in memory only those within the overlap (or scored since): neither grows with the container's history;
* each try is recorded on the receipt (``status: pending``, ``attempts``) *before* the function runs, so a try
  that kills the process (``os._exit``, a segfault) still counts when the host starts again — as a queue message's
  dequeue count does for the Functions host;
* each output binding the function ``set()`` is uploaded to its path with the trigger's placeholders;
* a function that fails — any exception, ``SystemExit`` and ``KeyboardInterrupt`` from ``run()`` included — is
  tried again up to ``poison_threshold`` times (host.json ``extensions.blobs.poisonBlobThreshold``, default 5); then
  the blob goes to the ``webjobs-blobtrigger-poison`` queue (in the blob's storage account, else the host's) with
  the message the Functions host writes, a poison receipt keeps it from being tried again, and the failure is
  logged and counted (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#poison-blobs);
* a blob whose name would lead out of its container (a ``..`` segment: see ``blobpath``) is never read; it is
  logged once and counted as ``rejected``;
* the receipts container deleted while serving is created again; a receipt that cannot be written is still
  remembered in memory, so no blob is scored again and again.

A blob tried and not finished (a failure under the threshold, a storage error) is tried again at the next poll
and holds the watermark back until it is done, so a restart finds it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError

from ..blobpath import BlobPathError, check_blob_name
from ..errors import HostError
from ..redact import redact
from ..storage import StorageQueue, blob_service
from .accesslog import AccessLog
from .blobcommon import POISON_QUEUE, Out, Stats, as_bytes, resolve_connection
from .blobcommon import binding_path as _binding_path
from .blobcommon import first_line as _first_line
from .blobrun import BlobRuns
from .blobscan import OVERLAP, POLL_BUDGET, Listed, ScanState, list_page
from .loader import LoadedFunction
from .receipts import RECEIPTS_CONTAINER, ReceiptStore

logger = logging.getLogger("modelfunc.host.blob")
__all__ = ["POISON_QUEUE", "RECEIPTS_CONTAINER", "BlobListener", "Out", "Stats", "as_bytes", "resolve_connection"]
DEFAULT_POISON_THRESHOLD = 5
LOG_INTERVAL = 0.05  # seconds between looks at the storage log (a stat, and a read when it grew)


class BlobListener(BlobRuns):
    def __init__(self, function: LoadedFunction, settings: dict[str, str], *, host_id: str,
                 poll_interval: float = 0.2, workers: int = 4, poison_threshold: int = DEFAULT_POISON_THRESHOLD,
                 on_error: Callable[[str], None] | None = None, storage_log: str | Path | None = None) -> None:
        """``storage_log``: the access log of the Azurite the trigger's connection points to (accesslog.py), when
        modelfunc started it: the blobs written there are looked at at once, the scans go on beside it."""
        self.function = function
        self.path = _binding_path(function, function.trigger.data["path"], "its trigger")
        conn = resolve_connection(settings, function.trigger.data.get("connection", ""))
        self.service = blob_service(conn)
        host_conn = settings.get("AzureWebJobsStorage") or conn
        if host_conn.strip().lower() == "usedevelopmentstorage=true" and conn.strip().lower() != host_conn.lower():
            host_conn = conn  # local.settings.json default, overridden by an explicit trigger connection
        self.receipts_service = blob_service(host_conn)
        # The poison queue: in the blob's own account, else (a blob-only account) in the host's, as the host does.
        queues = (StorageQueue.for_connection(c, POISON_QUEUE) for c in dict.fromkeys((conn, host_conn)))
        self.poison_queues = [q for q in queues if q is not None]
        self.outputs = []
        for binding in function.outputs:
            if binding.type != "blob":
                raise HostError(f"function {function.name}: output binding type {binding.type!r} is not "
                                "supported by the local host (blob outputs are)")
            out_conn = resolve_connection(settings, binding.data.get("connection", ""))
            path = _binding_path(function, binding.data["path"], f"output binding {binding.name!r}")
            self.outputs.append((binding.name, path, blob_service(out_conn)))
        self.host_id = host_id
        self.poll_interval = poll_interval
        self.poison_threshold = max(int(poison_threshold), 1)
        self.stats = Stats()
        self.receipts = ReceiptStore(self.receipts_service, host_id, function.name, self.path.container,
                                     on_recreate=self._receipts_gone)
        self.scan = ScanState(poll_interval)
        self.workers = max(int(workers), 1)
        # Memory, all keyed by (name, etag) and bounded by recent activity, not by history:
        self._done: dict[tuple[str, str], float] = {}  # scored or poisoned -> Last-Modified (kept within the overlap)
        self._attempts: dict[tuple[str, str], int] = {}  # tries started (pending receipts read too)
        self._rejected: dict[tuple[str, str], float] = {}  # names that would leave the container: never read
        self._unsettled: dict[tuple[str, str], tuple[float, dict[str, str], bool]] = {}  # started, not finished
        self._retry: set[tuple[str, str]] = set()  # unsettled and not running: started again at the next poll
        self._inflight: dict[tuple[str, str], Future[None]] = {}
        self._loaded: set[tuple[str, str]] | None = None  # all receipts, read at a start without scan info
        self._started_at: float | None = None  # storage clock at this host's first page: later blobs are new
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"blob-{function.name}")
        self._thread: threading.Thread | None = None
        self._on_error = on_error
        self._storage_log = storage_log
        self._log_thread: threading.Thread | None = None
        self._said: dict[str, float] = {}  # storage trouble already logged, and when (said once a minute)
        self.last_error: str | None = None

    # ------------------------------------------------------------------ receipts

    @property
    def _receipt_prefix(self) -> str:
        return self.receipts.prefix

    def _receipt_name(self, name: str, etag: str) -> str:
        return self.receipts.name(name, etag)

    def _receipts_gone(self) -> None:
        self._say(f"{self.function.name}: the receipts container {RECEIPTS_CONTAINER} is gone; creating it again",
                  level=logging.WARNING)

    def _load_receipts(self) -> None:
        self.receipts.ensure_container()
        watermark = self.receipts.load_scan_info()
        if watermark is not None:
            self.scan.watermark = watermark
            logger.info("%s: scan info loaded (host id %s): blobs modified since %.0f are looked at",
                        self.function.name, self.host_id, watermark)
            return
        done, pending = self.receipts.load_all()  # no scan info (a first start): the receipts decide, once
        self._loaded = done
        self._attempts.update(pending)
        logger.info("%s: %d blob receipt(s) loaded (host id %s)%s", self.function.name, len(done),
                    self.host_id, f", {len(pending)} blob(s) tried before and not finished" if pending else "")

    def _write_receipt(self, name: str, etag: str, status: str, attempts: int, modified: float = 0.0) -> None:
        """Write the receipt; a final one (ok, poison) is remembered in memory first, so that even a receipt that
        cannot be written never makes this host score the blob again. A pending one must be written (it is what
        makes a crash count): its failure is raised."""
        key = (name, etag.strip('"'))
        if status != "pending":
            with self._lock:
                self._done[key] = modified
                self._attempts.pop(key, None)
        try:
            self.receipts.write(name, etag, status, attempts)
        except AzureError as e:
            if status == "pending":
                raise
            self.last_error = _first_line(e)
            self._say(f"{self.function.name}: the {status} receipt for {self.path.container}/{name} could not be "
                      f"written ({self.last_error}); this host will not try the blob again, but a restart will")

    def _say(self, message: str, *, level: int = logging.ERROR) -> None:
        """Log ``message`` (redacted) unless the same was said within the last minute."""
        now = time.monotonic()
        with self._lock:
            if now - self._said.get(message, -1e9) < 60:
                return
            self._said[message] = now
        logger.log(level, "%s", redact(message))

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
                            f"{_first_line(e)}") from None
        self._thread = threading.Thread(target=self._loop, name=f"listen-{self.function.name}", daemon=True)
        self._thread.start()
        if self._storage_log is not None:
            log = AccessLog(self._storage_log)
            self._log_thread = threading.Thread(target=self._follow, args=(log,), name=f"log-{self.function.name}",
                                                daemon=True)
            self._log_thread.start()
            logger.info("%s: reading the blobs written from the storage log %s", self.function.name, log.path)
        logger.info("%s: listening to %s (every %.2fs, less often while idle)", self.function.name,
                    self.path.pattern, self.poll_interval)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling, and let blobs already being scored finish (so none is lost or scored twice)."""
        self._stop.set()
        for thread in (self._thread, self._log_thread):
            if thread:
                thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        reported = False
        while not self._stop.is_set():
            started = 0
            try:
                started = self.poll_once()
                if reported:
                    logger.info("%s: storage reachable again", self.function.name)
                reported = False
                self.last_error = None
            except AzureError as e:
                self.last_error = _first_line(e)
                if not reported:
                    logger.error("%s: listing %s failed: %s (retrying)", self.function.name,
                                 self.path.container, self.last_error)
                    reported = True
            with self._lock:
                busy = bool(started or self._inflight or self._retry)
            self._stop.wait(self.scan.next_wait(busy=busy, mid_sweep=self.scan.marker is not None))

    def _backlog(self) -> int:
        with self._lock:
            return len(self._inflight)

    def poll_once(self) -> int:
        """Start the blobs waiting for a retry, then go on with the sweep (for at most ``POLL_BUDGET`` seconds,
        and not while the workers have a backlog); returns how many blobs were started."""
        started = self._start_retries()
        container = self.service.get_container_client(self.path.container)
        deadline = time.monotonic() + POLL_BUDGET
        while self._backlog() < self.workers * 8 and not self._stop.is_set():
            cpu = time.thread_time()
            items, marker, now = list_page(container, self.path.prefix or None, self.scan.marker)
            self.scan.begin_page(now)
            if self._started_at is None:
                self._started_at = now
            for item in items:
                if self.scan.is_candidate(item.modified):
                    started += self._consider(item)
            self.scan.listed += len(items)
            self.scan.marker = marker
            self.scan.sweep_cpu += time.thread_time() - cpu
            if marker is None:
                self._end_sweep()
                break
            if time.monotonic() > deadline:
                break
        if started:
            self.scan.activity()
        return started

    def _end_sweep(self) -> None:
        with self._lock:
            held = min((m for m, _, _ in self._unsettled.values()), default=None)
        watermark = self.scan.end_sweep(held)
        with self._lock:
            floor = watermark - OVERLAP
            for memory in (self._done, self._rejected):
                for key in [k for k, m in memory.items() if m < floor]:
                    del memory[key]
            self._loaded = None  # the watermark now vouches for everything the loaded receipts covered
            self.stats.scan = {"sweeps": self.scan.sweeps, "listed": self.scan.listed, "watermark": watermark,
                               "sweep_cpu_ms": round(self.scan.last_sweep_cpu * 1000, 2), "hinted": self.scan.hinted,
                               "keys_in_memory": len(self._done) + len(self._rejected) + len(self._unsettled)}
        self.receipts.save_scan_info(watermark)

    def _consider(self, item: Listed) -> int:
        key = (item.name, item.etag)
        with self._lock:
            if key in self._done or key in self._unsettled or key in self._rejected:
                return 0
            if self._loaded is not None and key in self._loaded:
                self._done[key] = item.modified
                return 0
        try:
            check_blob_name(item.name)
        except BlobPathError as e:
            self._reject(key, e, item.modified)
            return 0
        values = self.path.match(item.name)
        if values is None:
            return 0
        # A blob older than this host's first page may have been handled by an earlier run: its receipt decides.
        check = self._loaded is None and (self._started_at is None or item.modified <= self._started_at + OVERLAP)
        with self._lock:  # the scan and the storage log both come here: one of them starts the blob
            if key in self._done or key in self._unsettled or key in self._rejected:
                return 0
            self._unsettled[key] = (item.modified, values, check)
            self._inflight[key] = self._pool.submit(self._run, key)
        return 1

    def _follow(self, log: AccessLog) -> None:
        """The storage log's thread: each blob written to the trigger's container is looked at at once (its ETag
        read, then as a listed blob); while the workers have a backlog the sweep will find it, as it finds a
        write the log did not show."""
        while not self._stop.wait(LOG_INTERVAL):
            try:
                written = [name for container, name in log.writes() if container == self.path.container]
            except OSError:
                continue
            for name in written:
                if self._stop.is_set() or self._backlog() >= self.workers * 8:
                    break
                if self.path.match(name) is None:
                    continue
                try:
                    props = self.service.get_blob_client(self.path.container, name).get_blob_properties()
                except AzureError:
                    continue  # gone already, or storage trouble: the sweep decides
                modified = props.last_modified.timestamp() if props.last_modified else time.time()
                if self._consider(Listed(name, (props.etag or "").strip('"'), modified)):
                    self.scan.activity()
                    with self._lock:
                        self.scan.hinted += 1
                        self.stats.scan = {**self.stats.scan, "hinted": self.scan.hinted}

    def _start_retries(self) -> int:
        with self._lock:
            keys = [k for k in self._retry if k not in self._inflight]
            self._retry.clear()
            for key in keys:
                self._inflight[key] = self._pool.submit(self._run, key)
        return len(keys)

    def _run(self, key: tuple[str, str]) -> None:
        settled = False
        try:
            with self._lock:
                entry = self._unsettled.get(key)
            if entry is not None:
                settled = self._process(key[0], key[1], entry[1], modified=entry[0], check=entry[2])
        finally:
            with self._lock:
                self._inflight.pop(key, None)
                if settled:
                    self._unsettled.pop(key, None)
                elif key in self._unsettled and not self._stop.is_set():
                    self._retry.add(key)

    def _reject(self, key: tuple[str, str], error: BlobPathError, modified: float = 0.0) -> None:
        with self._lock:
            self._rejected[key] = modified
            self.stats.rejected += 1
        message = f"{self.function.name}: left {self.path.container}/{key[0]!r} alone (never read): {error}"
        logger.error("%s", redact(message))
        if self._on_error:
            self._on_error(redact(message))
