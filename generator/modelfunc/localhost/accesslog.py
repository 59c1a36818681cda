"""The blobs written to the embedded Azurite, read from its access log: the local host's storage log.

The Functions host's blob trigger does not wait for its container scans alone: "by default blob trigger uses polling
which works as a hybrid between inspecting Azure Storage analytics logging and running periodic container scans"
(the extension's README, https://github.com/Azure/azure-sdk-for-net/blob/Microsoft.Azure.WebJobs.Extensions.Storage.Blobs_5.1.3/sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Blobs/README.md).
Azurite keeps no ``$logs``, but the Azurite modelfunc starts writes an access log, one line per request once it is
answered (``127.0.0.1 - - [date] "PUT /devstoreaccount1/input/a%20b.json HTTP/1.1" 201 -``). :class:`AccessLog`
follows that file from where it was when the listener started and hands out the blobs whose content or
properties a request changed: Put Blob (a copy too), Put Block List, Append Block, Put Page, Set Blob Metadata and
Set Blob Properties, answered 2xx. A block put and not yet committed is not a blob yet (its Put Block List is).

What it hands out is a hint, never a decision: the listener reads the blob's ETag and the receipts decide as for a
listed blob, and the scans still run (a write the log missed is found by the next sweep), so a hint seen twice, or
a write to another account on the same emulator, costs one HEAD request and nothing else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote

# Only the request line and the status are read; the rest of the line is Azurite's (common log format).
_WRITE = re.compile(rb'"PUT (/[^ ?"]+)(?:\?([^ "]*))? HTTP/[0-9.]+" (2[0-9][0-9]) ')
_CHANGES = {"", "blocklist", "appendblock", "page", "metadata", "properties"}  # ?comp= of a write that changes a blob
READ_AT_MOST = 4 * 2**20  # bytes read per look: a burst of writes is read over several looks


class AccessLog:
    """Follows one Azurite access log; :meth:`writes` returns the blobs written since the last call."""

    def __init__(self, path: str | Path, account: str = "devstoreaccount1") -> None:
        self.path = Path(path)
        self.account = account
        try:
            self.offset = os.stat(self.path).st_size  # what was written before is the first sweep's
        except OSError:
            self.offset = 0
        self._partial = b""  # a line Azurite has not finished writing

    def writes(self) -> list[tuple[str, str]]:
        """(container, blob name) of each blob written since the last call, in the log's order, each once."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return []
        if size < self.offset:  # the file was truncated (a new emulator on the same folder): start over
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(min(size - self.offset, READ_AT_MOST))
        self.offset += len(data)
        data, _, self._partial = (self._partial + data).rpartition(b"\n")
        found: dict[tuple[str, str], None] = {}
        for m in _WRITE.finditer(data):
            account, _, rest = m.group(1).decode("ascii", "replace").lstrip("/").partition("/")
            container, _, blob = rest.partition("/")
            if account != self.account or not container or not blob:
                continue
            comp = parse_qs(m.group(2).decode("ascii", "replace") if m.group(2) else "").get("comp", [""])[0]
            if comp in _CHANGES:
                found[unquote(container), unquote(blob)] = None
        return list(found)
