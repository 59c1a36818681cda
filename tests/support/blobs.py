"""Blob-trigger repos on the suite's shared Azurite account: containers of their own per test, and waiting for a blob
(an output, an error record) to appear."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any


def own_containers(repo: Path, tag: str | None = None, *, name: str | None = None, out: str = "out",
                   tolerance: str | None = "1.0e-4") -> str:
    """Point the blob repo's trigger at containers no other test uses: ``in-<tag>``, ``<out>-<tag>`` and
    ``err-<tag>`` (a new tag unless given); ``name`` names the app, ``tolerance`` the sample's. The tag is returned."""
    tag = tag or uuid.uuid4().hex[:8]
    (repo / "modelfunc.yaml").write_text(
        (f"name: {name}\n" if name else "")
        + f"trigger:\n  type: blob\n  input_path: in-{tag}/{{blobname}}.json\n"
        f"  output_path: {out}-{tag}/{{blobname}}_out.json\n  error_path: err-{tag}/{{blobname}}_error.json\n"
        + (f"samples:\n  tolerance: {tolerance}\n" if tolerance else ""))
    return tag


def wait_for_blob(storage: Any, container: str, name: str, timeout: float = 30, host: Any = None) -> bytes:
    """The blob's bytes once it exists; an AssertionError (with the host's log, when given) after ``timeout`` s."""
    from azure.core.exceptions import ResourceNotFoundError

    deadline = time.monotonic() + timeout
    blob = storage.get_blob_client(container, name)
    while True:
        try:
            return blob.download_blob().readall()
        except ResourceNotFoundError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{container}/{name} did not appear within {timeout:.0f} s\n"
                                     + (host.output() if host else "")) from None
            time.sleep(0.05)


def error_record_of(example: Any, serve: Any, azurite: Any, raw: bytes, name: str) -> tuple[dict, Any, Any, str]:
    """Upload ``raw`` as ``in-<tag>/<name>.json`` to a blob app served on Azurite and wait for its error record:
    (the record, the host, the storage client, the tag)."""
    import json

    from azure.storage.blob import BlobServiceClient

    repo = example("diabetes-blob")
    tag = own_containers(repo, tolerance=None)
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    host = serve(repo, connection_string=azurite.connection_string)
    storage.get_blob_client(f"in-{tag}", f"{name}.json").upload_blob(raw)
    return json.loads(wait_for_blob(storage, f"err-{tag}", f"{name}_error.json", 30, host)), host, storage, tag
