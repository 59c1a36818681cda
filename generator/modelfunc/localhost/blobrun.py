"""The blob trigger's part that handles one blob (:class:`BlobRuns`, a base of ``blobs.BlobListener``): read it at
the ETag it was found with, count the try on its receipt before the function runs, call the function, upload the
outputs it set, write the final receipt; a failure is tried again up to the poison threshold, then the blob goes to
the poison queue. ``invoke`` is the admin API's for a blob function. See blobs.py for the whole listener.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceNotFoundError

from ..blobpath import BlobPath, BlobPathError, split
from ..errors import HostError, NotFoundError, StorageError
from ..redact import redact
from ..storage import StorageQueue, without_query
from .blobcommon import Out, Stats, as_bytes, send_poison
from .blobcommon import first_line as _first_line
from .loader import LoadedFunction

logger = logging.getLogger("modelfunc.host.blob")


class BlobRuns:
    """What handling one blob needs of the listener (set by ``BlobListener.__init__``) and does with it."""

    function: LoadedFunction
    path: BlobPath
    service: Any  # azure.storage.blob.BlobServiceClient
    outputs: list[tuple[str, BlobPath, Any]]
    host_id: str
    poison_threshold: int
    poison_queues: list[StorageQueue]
    stats: Stats
    last_error: str | None
    _lock: threading.Lock
    _stop: threading.Event
    _done: dict[tuple[str, str], float]
    _attempts: dict[tuple[str, str], int]
    _unsettled: dict[tuple[str, str], tuple[float, dict[str, str], bool]]
    _on_error: Callable[[str], None] | None
    receipts: Any  # receipts.ReceiptStore
    _write_receipt: Callable[..., None]  # (name, etag, status, attempts, modified): BlobListener's
    _say: Callable[..., None]  # (message, *, level): BlobListener's, said once a minute

    def _process(self, name: str, etag: str, values: dict[str, str], *, modified: float = 0.0,
                 check: bool = False) -> bool:
        """Try the blob once; True when it is settled (scored, poisoned, done before, gone or overwritten), False
        when it is to be tried again."""
        key = (name, etag)
        attempts = 0
        try:
            if self._stop.is_set():
                return False
            if check:  # it may predate this run: what an earlier one did counts
                receipt = self.receipts.read(name, etag)
                if receipt and receipt[0] != "pending":
                    with self._lock:
                        self._done[key] = modified
                    return True
                if receipt:
                    with self._lock:
                        self._attempts[key] = max(self._attempts.get(key, 0), receipt[1])
                with self._lock:
                    if key in self._unsettled:
                        self._unsettled[key] = (modified, values, False)
            blob = self.service.get_blob_client(self.path.container, name)
            try:
                downloader = blob.download_blob(etag=f'"{etag}"', match_condition=_if_match())
                data = downloader.readall()
                props = downloader.properties
            except ResourceNotFoundError:
                return True  # deleted before we got to it
            except AzureError as e:
                if getattr(e, "status_code", None) == 412:
                    return True  # overwritten since listing: the new version is a new candidate
                raise
            with self._lock:
                attempts = self._attempts.get(key, 0)
            if attempts >= self.poison_threshold:  # every try so far ended with the host itself
                self._poison(name, etag, attempts, "the host stopped during each of them (did run() end the "
                                                   "process: os._exit, a crash?)", modified)
                return True
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
                return self._failed(name, etag, attempts, e, modified)
            uploads = []
            try:
                for binding_name, path, svc in self.outputs:
                    out = outs[binding_name]
                    if out.is_set and out.value is not None:
                        uploads.append((svc, path.container, path.format(values), as_bytes(out.value)))
            except BlobPathError as e:  # the output's name would leave its container: no retry mends that
                self._poison(name, etag, attempts, f"an output binding's blob name is refused: {e}", modified)
                return True
            except TypeError as e:
                return self._failed(name, etag, attempts, e, modified)
            for svc, container, out_name, body in uploads:
                svc.get_blob_client(container, out_name).upload_blob(body, overwrite=True)
            self._write_receipt(name, etag, "ok", attempts, modified)
            with self._lock:
                self.stats.scored += 1
                self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            logger.info("%s: scored %s/%s in %.1f ms", self.function.name, self.path.container, name,
                        (time.perf_counter() - started) * 1000)
            return True
        except AzureError as e:
            # Storage failed mid-way: no final receipt, so the blob is tried again on a later poll.
            self.last_error = _first_line(e)
            self._say(f"{self.function.name}: storage error while handling {name}: {self.last_error}")
            return False
        except Exception as e:  # noqa: BLE001 - a fault of this host's own: counted, so it cannot loop for ever
            logger.exception("%s: handling %s failed", self.function.name, name)
            return self._failed(name, etag, max(attempts, 1), e, modified)

    def _failed(self, name: str, etag: str, attempts: int, error: BaseException, modified: float = 0.0) -> bool:
        """Count the failure; True when it was the last try (the blob is poisoned)."""
        with self._lock:
            self.stats.failed += 1
        logger.error("%s: %s failed on %s/%s (attempt %d of %d): %s", self.function.name, self.function.name,
                     self.path.container, name, attempts, self.poison_threshold, _first_line(error))
        if attempts >= self.poison_threshold:
            self._poison(name, etag, attempts, f"the last one: {_first_line(error)}", modified)
            return True
        with self._lock:
            self.stats.retried += 1
        return False

    def poison_message(self, name: str, etag: str) -> dict[str, str]:
        """The message the Functions host puts on the poison queue for a blob (its BlobTriggerMessage)."""
        return {"Type": "BlobTrigger", "FunctionId": f"{self.host_id}.Functions.{self.function.name}",
                "BlobType": "BlockBlob", "ContainerName": self.path.container, "BlobName": name,
                "ETag": etag.strip('"')}

    def _poison(self, name: str, etag: str, attempts: int, reason: str, modified: float = 0.0) -> None:
        """Give up on the blob: the poison queue, a poison receipt (never tried again), the log and the status."""
        self._write_receipt(name, etag, "poison", attempts, modified)
        with self._lock:
            self.stats.poisoned += 1
        moved = send_poison(self.poison_queues, json.dumps(self.poison_message(name, etag)))
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
        modified = props.last_modified.timestamp() if props.last_modified else time.time()
        self._process(name, (props.etag or "").strip('"'), values, modified=modified)


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
