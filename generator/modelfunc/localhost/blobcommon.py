"""What the blob trigger's listener (``blobs``) shares with the rest of the host: ``Out`` (the host side of an output
binding), the connection an app setting names, the listener's counters, and the poison queue's send."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..blobpath import BlobPath, BlobPathError
from ..errors import HostError, ModelfuncError
from ..redact import redact
from .loader import LoadedFunction

if TYPE_CHECKING:  # the storage SDK is imported by the listener alone: an HTTP app's host never needs it
    from ..storage import StorageQueue

POISON_QUEUE = "webjobs-blobtrigger-poison"  # the Functions host's name (HostQueueNames.BlobTriggerPoisonQueue)


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
    scan: dict[str, Any] = field(default_factory=dict)  # the container scan: sweeps, blobs listed, memory held

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        p50 = lat[len(lat) // 2] if lat else None
        return {"scored": self.scored, "failed": self.failed, "retried": self.retried,
                "poisoned": self.poisoned, "rejected": self.rejected, "p50_ms": p50, "scan": dict(self.scan)}


def first_line(error: BaseException) -> str:
    text = str(error)
    return redact(f"{type(error).__name__}: {text.splitlines()[0]}" if text.strip() else type(error).__name__)


def binding_path(function: LoadedFunction, path: str, what: str) -> BlobPath:
    try:
        return BlobPath.parse(path)
    except BlobPathError as e:
        raise HostError(f"function {function.name}: the path of {what} is invalid: {e}") from None



def send_poison(queues: list[StorageQueue], text: str) -> str:
    """Put ``text`` on the first poison queue that takes it; what became of it, for the log."""
    where, problems = None, []
    for queue in queues:
        try:
            queue.send(text)
            where = str(queue)
            break
        except ModelfuncError as e:
            problems.append(e.message)
    if where:
        return f"moved to the poison queue ({where})"
    why = "; ".join(problems) or "the account has no queue service"
    return f"the poison queue {POISON_QUEUE} could not be written ({why}); a poison receipt keeps it from being " \
           "tried again"
