"""The blob round trip: upload ``samples.input`` to ``<input container>/<unique>``, wait for the output blob named
by the output pattern (or the error record), compare; works against any storage connection string, or an account
reached by identity.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from ..blobpath import BlobPath
from ..config import Project
from ..errors import StorageError
from ..redact import redact
from ..runtime.modelfunc_runtime import STAMP_CONTAINER
from ..samples import load_expected
from ..storage import blob_service, blob_service_for, describe
from ..triggers import BlobTrigger
from .report import Progress, TestReport, judge, while_role_applies

# A role assignment made by the deploy (Storage Blob Data Contributor for the identity running the test) can take
# minutes to apply in Azure; until then the upload is refused with one of these codes.
PERMISSION_PENDING = frozenset({"AuthorizationPermissionMismatch", "AuthorizationFailure"})


def _storage_error(service: BlobServiceClient, e: Exception) -> StorageError:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return StorageError(
        redact(f"storage account {describe(service)} failed: {type(e).__name__}: {first}"),
        hint="is the storage emulator (or account) running and the connection string right?",
    )


def _upload(blob: Any, data: bytes, *, service: BlobServiceClient, role_wait: float,
            progress: Progress | None) -> None:
    """Upload the sample; while the account refuses the identity's permission, wait up to ``role_wait`` s."""
    def refusal(e: Exception) -> str | None:
        pending = isinstance(e, HttpResponseError) and e.status_code == 403 and e.error_code in PERMISSION_PENDING
        return str(e.error_code) if pending else None  # type: ignore[union-attr]

    while_role_applies(
        lambda: blob.upload_blob(data, overwrite=False), refusal, role_wait=role_wait, progress=progress,
        waiting="the account does not let this identity write yet",
        give_up=lambda reason: StorageError(
            f"{describe(service)} refused the test's upload ({reason}) for {role_wait:.0f} s",
            hint="the identity running the test needs Storage Blob Data Contributor on this account (a new role "
                 "assignment can take a few minutes to apply: run again)"))


def run_blob_test(project: Project, connection_string: str | None, *, timeout: float = 60.0, keep: bool = False,
                  progress: Progress | None = None, account_url: str | None = None,
                  credential: Any = None, role_wait: float = 300.0, transport: Any = None,
                  deployment: str | None = None) -> TestReport:
    """The blob round trip on the account of ``connection_string``, or of ``account_url`` signed in with
    ``credential`` (a TokenCredential: identity instead of a key, as against an app in Azure).

    An upload refused for a missing data permission is tried again for up to ``role_wait`` seconds: right after
    the deploy granted it, the role may not apply yet. ``transport`` is passed to the storage client.

    ``deployment``: only an answer stamped with this deployment id counts (the runtime writes the stamp beside
    the answer, in ``modelfunc-stamps``). An answer from anything else — a container still running the previous
    image — is set aside and the sample sent again under a new name, until ``timeout``."""
    trigger = project.trigger
    assert isinstance(trigger, BlobTrigger)
    src, dst, err = (BlobPath.parse(p) for p in (trigger.input_path, trigger.output_path, trigger.error_path))
    service = blob_service_for(account_url, credential, transport=transport) if account_url else \
        blob_service(connection_string or "", transport=transport)
    expected = load_expected(project)
    report = TestReport(False, "blob", describe(service), "", tolerance=project.config.samples.tolerance,
                        expected=expected)
    started = time.perf_counter()
    refused: str | None = None  # who answered instead, when an answer came from another deployment
    try:
        while True:
            unique = f"modelfunc-test-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
            values = {p: ("x" if p != "blobname" else unique) for p in src.placeholders}
            in_name, out_name, err_name = src.format(values), dst.format(values), err.format(values)
            report.input, report.output = f"{src.container}/{in_name}", f"{dst.container}/{out_name}"
            out_blob = service.get_blob_client(dst.container, out_name)
            err_blob = service.get_blob_client(err.container, err_name)
            in_blob = service.get_blob_client(src.container, in_name)
            stamp_blob = service.get_blob_client(STAMP_CONTAINER, f"{dst.container}/{out_name}")
            try:
                _upload(in_blob, project.sample_input.read_bytes(), service=service, role_wait=role_wait,
                        progress=progress)
            except ResourceNotFoundError:
                raise StorageError(f"container {src.container!r} does not exist in {describe(service)}",
                                   hint="is the app running? it creates the container when it starts") from None
            sent = time.perf_counter()
            left = timeout - (sent - started)
            if progress:
                progress(f"uploaded {report.input}; waiting up to {max(left, 0):.0f} s for {report.output}")
            body, record = _wait_for_answer(out_blob, err_blob, report, started=started, timeout=timeout,
                                            progress=progress)
            if body is None and record is None:
                report.error = (f"the answer came from {refused}, not from deployment {deployment}: the previous "
                                "image is still answering") if refused else \
                    (f"no output after {timeout:.0f} s: is the app running and listening to container "
                     f"{src.container!r} on this storage account?")
                return report
            report.latency_ms = (time.perf_counter() - sent) * 1000
            if deployment:
                report.deployment = _read_stamp(stamp_blob, started=started, timeout=timeout)
                if report.deployment != deployment:
                    who = refused = report.deployment or "an app that stamps no deployment"
                    if time.perf_counter() - started >= timeout:
                        report.error = (f"the answer came from {who}, not from deployment {deployment}: the "
                                        "previous image is still answering")
                        return report
                    if progress:
                        progress(f"  answered by {who}, not {deployment} (the previous image is still "
                                 "answering); sending the sample again")
                    if not keep:
                        _delete(in_blob, out_blob, err_blob, stamp_blob)
                    time.sleep(min(2.0, max(timeout - (time.perf_counter() - started), 0)))
                    continue
            if record is not None:
                report.output = f"{err.container}/{err_name}"
                report.error = f"the app wrote an error record instead of an output: " \
                               f"{record.decode('utf-8', 'replace')}"
                return report
            judge(report, expected, body)
            if not keep:
                _delete(in_blob, out_blob, stamp_blob)
            return report
    except AzureError as e:
        raise _storage_error(service, e) from None


def _wait_for_answer(out_blob: Any, err_blob: Any, report: TestReport, *, started: float, timeout: float,
                     progress: Progress | None) -> tuple[bytes | None, bytes | None]:
    """(output, error record): whichever the app writes first; (None, None) after ``timeout``."""
    next_note = time.perf_counter() - started + 5.0
    while True:
        elapsed = time.perf_counter() - started
        try:
            return out_blob.download_blob().readall(), None
        except ResourceNotFoundError:
            pass
        try:
            return None, err_blob.download_blob().readall()
        except ResourceNotFoundError:
            pass
        if elapsed > timeout:
            return None, None
        if progress and elapsed >= next_note:
            progress(f"  still waiting for {report.output} ({elapsed:.0f} s)")
            next_note += 5.0
        time.sleep(0.05 if elapsed < 2 else 0.25)


def _read_stamp(stamp_blob: Any, *, started: float, timeout: float) -> str | None:
    """The deployment id stamped beside an answer (the host writes it with the answer; allow it a moment)."""
    grace = time.perf_counter() + 5.0
    while True:
        try:
            data = json.loads(stamp_blob.download_blob().readall())
            if not isinstance(data, dict):
                return None
            return str(data.get("deployment") or "") or None
        except ResourceNotFoundError:
            pass
        except ValueError:
            return None
        now = time.perf_counter()
        if now > grace or now - started > timeout:
            return None
        time.sleep(0.05)


def _delete(*blobs: Any) -> None:
    for blob in blobs:
        try:
            blob.delete_blob()
        except ResourceNotFoundError:
            pass
