"""Blob trigger listener: container scan, output bindings, blob receipts, retries and the poison queue.

It behaves like the Functions host's ``LogsAndContainerScan`` listener, scaled down to one process:

* it lists the trigger container (by the pattern's literal prefix) every ``poll_interval`` seconds;
* a blob is new when there is no receipt for its name *and* ETag, so an overwritten blob is scored
  again and an unchanged one never is, across restarts: receipts live in the host storage account at
  ``azure-webjobs-hosts/blobreceipts/<host-id>/<function>/<etag>/<container>/<blob>`` like the host's,
  with the host id of the app (and slot) so that two apps on one account never share them;
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
"""

from __future__ import annotations

import json
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

from ..blobpath import BlobPath, BlobPathError, check_blob_name, split
from ..errors import HostError, ModelfuncError, NotFoundError, StorageError
from ..redact import redact
from ..storage import StorageQueue, blob_service, without_query
from .loader import LoadedFunction

logger = logging.getLogger("modelfunc.host.blob")
RECEIPTS_CONTAINER = "azure-webjobs-hosts"
POISON_QUEUE = "webjobs-blobtrigger-poison"  # the Functions host's name (HostQueueNames.BlobTriggerPoisonQueue)
DEFAULT_POISON_THRESHOLD = 5


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
    rejected: int = 0  # blobs never read: their name would lead out of the container
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # the recent ones only

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        p50 = lat[len(lat) // 2] if lat else None
        return {"scored": self.scored, "failed": self.failed, "retried": self.retried,
                "poisoned": self.poisoned, "rejected": self.rejected, "p50_ms": p50}


def _first_line(error: BaseException) -> str:
    text = str(error)
    return redact(f"{type(error).__name__}: {text.splitlines()[0]}" if text.strip() else type(error).__name__)


def _binding_path(function: LoadedFunction, path: str, what: str) -> BlobPath:
    try:
        return BlobPath.parse(path)
    except BlobPathError as e:
        raise HostError(f"function {function.name}: the path of {what} is invalid: {e}") from None


class BlobListener:
    def __init__(self, function: LoadedFunction, settings: dict[str, str], *, host_id: str,
                 poll_interval: float = 0.2, workers: int = 4, poison_threshold: int = DEFAULT_POISON_THRESHOLD,
                 on_error: Callable[[str], None] | None = None) -> None:
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
        self._receipts: set[tuple[str, str]] = set()  # (name, etag) done with: scored, or poisoned
        self._attempts: dict[tuple[str, str], int] = {}  # tries started (pending receipts loaded at start too)
        self._rejected: set[tuple[str, str]] = set()  # names that would leave the container: never read
        self._inflight: dict[tuple[str, str], Future[None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"blob-{function.name}")
        self._thread: threading.Thread | None = None
        self._on_error = on_error
        self._said: dict[str, float] = {}  # storage trouble already logged, and when (said once a minute)
        self.last_error: str | None = None

    # ------------------------------------------------------------------ receipts

    @property
    def _receipt_prefix(self) -> str:
        return f"blobreceipts/{self.host_id}/{self.function.name}/"

    def _receipt_name(self, name: str, etag: str) -> str:
        return f"{self._receipt_prefix}{etag.strip(chr(34))}/{self.path.container}/{name}"

    def _ensure_receipts_container(self) -> None:
        try:
            self.receipts_service.get_container_client(RECEIPTS_CONTAINER).create_container()
        except ResourceExistsError:
            pass

    def _load_receipts(self) -> None:
        self._ensure_receipts_container()
        container = self.receipts_service.get_container_client(RECEIPTS_CONTAINER)
        prefix = self._receipt_prefix
        pending = 0
        for item in container.list_blobs(name_starts_with=prefix, include=["metadata"]):
            rest = item.name[len(prefix):]
            etag, _, path = rest.partition("/")
            _, _, name = path.partition("/")
            metadata = item.metadata or {}
            if metadata.get("status") == "pending":  # tried, never finished: the tries so far still count
                self._attempts[(name, etag)] = _int(metadata.get("attempts"), 1)
                pending += 1
            else:
                self._receipts.add((name, etag))
        logger.info("%s: %d blob receipt(s) loaded (host id %s)%s", self.function.name, len(self._receipts),
                    self.host_id, f", {pending} blob(s) tried before and not finished" if pending else "")

    def _write_receipt(self, name: str, etag: str, status: str, attempts: int) -> None:
        """Write the receipt; a final one (ok, poison) is remembered in memory first, so that even a receipt that
        cannot be written never makes this host score the blob again. A pending one must be written (it is what
        makes a crash count): its failure is raised."""
        key = (name, etag.strip('"'))
        if status != "pending":
            with self._lock:
                self._receipts.add(key)
                self._attempts.pop(key, None)
        blob = self.receipts_service.get_blob_client(RECEIPTS_CONTAINER, self._receipt_name(name, etag))
        metadata = {"status": status, "attempts": str(attempts)}
        try:
            try:
                blob.upload_blob(b"", overwrite=True, metadata=metadata)
            except ResourceNotFoundError:  # the receipts container was deleted while serving: create it again
                self._say(f"{self.function.name}: the receipts container {RECEIPTS_CONTAINER} is gone; creating it "
                          "again", level=logging.WARNING)
                self._ensure_receipts_container()
                blob.upload_blob(b"", overwrite=True, metadata=metadata)
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
                self.last_error = _first_line(e)
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
                if key in self._receipts or key in self._inflight or key in self._rejected:
                    continue
            try:
                check_blob_name(item.name)
            except BlobPathError as e:
                self._reject(key, e)
                continue
            values = self.path.match(item.name)
            if values is None:
                continue
            with self._lock:
                self._inflight[key] = self._pool.submit(self._process, item.name, key[1], values)
            started += 1
        return started

    def _reject(self, key: tuple[str, str], error: BlobPathError) -> None:
        with self._lock:
            self._rejected.add(key)
            self.stats.rejected += 1
        message = f"{self.function.name}: left {self.path.container}/{key[0]!r} alone (never read): {error}"
        logger.error("%s", redact(message))
        if self._on_error:
            self._on_error(redact(message))

    # ------------------------------------------------------------------ one blob

    def _process(self, name: str, etag: str, values: dict[str, str]) -> None:
        key = (name, etag)
        attempts = 0
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
            with self._lock:
                attempts = self._attempts.get(key, 0)
            if attempts >= self.poison_threshold:  # every try so far ended with the host itself
                self._poison(name, etag, attempts, "the host stopped during each of them (did run() end the "
                                                   "process: os._exit, a crash?)")
                return
            attempts += 1
            self._write_receipt(name, etag, "pending", attempts)  # before run(): a crash counts on the next start
            with self._lock:
                self._attempts[key] = attempts
            stream = func.blob.InputStream(
                data=data, name=f"{self.path.container}/{name}", uri=without_query(blob.url), length=len(data),
                blob_properties={"ContentType": props.content_settings.content_type, "ETag": etag},
                metadata=dict(props.metadata or {}))
            outs = {binding_name: Out() for binding_name, _, _ in self.outputs}
            started = time.perf_counter()
            try:
                self.function.user_function(**{self.function.trigger.name: stream}, **outs)
            except BaseException as e:  # noqa: BLE001 - user code: SystemExit/KeyboardInterrupt from run() fail too
                self._failed(name, etag, attempts, e)
                return
            uploads = []
            try:
                for binding_name, path, svc in self.outputs:
                    out = outs[binding_name]
                    if out.is_set and out.value is not None:
                        uploads.append((svc, path.container, path.format(values), as_bytes(out.value)))
            except BlobPathError as e:  # the output's name would leave its container: no retry mends that
                self._poison(name, etag, attempts, f"an output binding's blob name is refused: {e}")
                return
            except TypeError as e:
                self._failed(name, etag, attempts, e)
                return
            for svc, container, out_name, body in uploads:
                svc.get_blob_client(container, out_name).upload_blob(body, overwrite=True)
            self._write_receipt(name, etag, "ok", attempts)
            with self._lock:
                self.stats.scored += 1
                self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            logger.info("%s: scored %s/%s in %.1f ms", self.function.name, self.path.container, name,
                        (time.perf_counter() - started) * 1000)
        except AzureError as e:
            # Storage failed mid-way: no final receipt, so the blob is tried again on a later poll.
            self.last_error = _first_line(e)
            self._say(f"{self.function.name}: storage error while handling {name}: {self.last_error}")
        except Exception as e:  # noqa: BLE001 - a fault of this host's own: counted, so it cannot loop for ever
            logger.exception("%s: handling %s failed", self.function.name, name)
            self._failed(name, etag, max(attempts, 1), e)
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _failed(self, name: str, etag: str, attempts: int, error: BaseException) -> None:
        with self._lock:
            self.stats.failed += 1
        logger.error("%s: %s failed on %s/%s (attempt %d of %d): %s", self.function.name, self.function.name,
                     self.path.container, name, attempts, self.poison_threshold, _first_line(error))
        if attempts >= self.poison_threshold:
            self._poison(name, etag, attempts, f"the last one: {_first_line(error)}")
        else:
            with self._lock:
                self.stats.retried += 1

    def poison_message(self, name: str, etag: str) -> dict[str, str]:
        """The message the Functions host puts on the poison queue for a blob (its BlobTriggerMessage)."""
        return {"Type": "BlobTrigger", "FunctionId": f"{self.host_id}.Functions.{self.function.name}",
                "BlobType": "BlockBlob", "ContainerName": self.path.container, "BlobName": name,
                "ETag": etag.strip('"')}

    def _poison(self, name: str, etag: str, attempts: int, reason: str) -> None:
        """Give up on the blob: the poison queue, a poison receipt (never tried again), the log and the status."""
        self._write_receipt(name, etag, "poison", attempts)
        with self._lock:
            self.stats.poisoned += 1
        text = json.dumps(self.poison_message(name, etag))
        where, problems = None, []
        for queue in self.poison_queues:
            try:
                queue.send(text)
                where = str(queue)
                break
            except ModelfuncError as e:
                problems.append(e.message)
        if where:
            moved = f"moved to the poison queue ({where})"
        else:
            why = "; ".join(problems) or "the account has no queue service"
            moved = f"the poison queue {POISON_QUEUE} could not be written ({why}); a poison receipt keeps it from " \
                    "being tried again"
        message = redact(f"{self.function.name}: gave up on {self.path.container}/{name} after {attempts} "
                         f"attempt(s): {reason}; {moved}")
        logger.error("%s", message)
        if self._on_error:
            self._on_error(message)

    def invoke(self, blob_path: str) -> None:
        """Score one named blob now (the admin API's invoke for a blob function)."""
        try:
            container, name = split(blob_path)
        except BlobPathError as e:
            raise HostError(str(e)) from None
        values = self.path.match(name) if container == self.path.container else None
        if values is None:
            raise HostError(f"{blob_path!r} does not match the trigger path {self.path.pattern!r}")
        try:
            props = self.service.get_blob_client(container, name).get_blob_properties()
        except ResourceNotFoundError:
            raise NotFoundError(f"blob {container}/{name} does not exist in the trigger's storage account",
                                hint=f"upload it first, or name a blob that matches {self.path.pattern!r}") from None
        except AzureError as e:
            raise StorageError(f"reading blob {container}/{name} failed: {_first_line(e)}") from None
        self._process(name, (props.etag or "").strip('"'), values)


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
