"""The round-trip test of a running app: send the sample, get the output, compare with the expected one.

One report shape for every trigger, so the console, the JSON report and (later) the GitHub step summary
render the same facts:

* blob: upload ``samples.input`` to ``<input container>/<unique>``, wait for the output blob named by
  the output pattern (or the error record), compare; works against any storage connection string;
* http: POST the sample to the function URL;
* service-bus-queue: invoke the function through the local host's admin API (no emulator exists).

What a report says goes through the secret redactor (``redact.py``) on the way out — the console, ``--report``
JSON, the step summary — so an account key, a SAS signature or a function key in a URL is never printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from .blobpath import BlobPath
from .config import Project, load_expected, sample_text
from .errors import ConfigError, StorageError
from .redact import redact, redact_data
from .runtime.modelfunc_runtime import DEPLOYMENT_HEADER, STAMP_CONTAINER
from .storage import blob_service, blob_service_for, describe

Progress = Callable[[str], None]


@dataclass
class Mismatch:
    path: str
    expected: Any
    actual: Any
    reason: str


@dataclass
class TestReport:
    passed: bool
    trigger: str
    target: str
    input: str
    output: str | None = None
    latency_ms: float | None = None
    tolerance: float = 0.0
    expected: Any = None
    actual: Any = None
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None
    deployment: str | None = None  # the deployment that answered, when the app says (see DEPLOYMENT_SETTING)
    answer: bytes | None = field(default=None, repr=False)  # the answer as it came, byte for byte

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, redacted (no key, SAS or function key in any string)."""
        d = asdict(self)
        d["answer_sha256"] = hashlib.sha256(self.answer).hexdigest() if self.answer is not None else None
        del d["answer"]
        for key in ("expected", "actual"):
            if isinstance(d[key], bytes):
                d[key] = d[key].decode("utf-8", "replace")
        for key in ("target", "input", "output", "error", "deployment"):
            if isinstance(d[key], str):
                d[key] = redact(d[key])
        d["mismatches"] = redact_data(d["mismatches"])
        return d

    def failure(self) -> str:
        """One line saying why the test failed (the error, or the first differences)."""
        return redact(self.error or "; ".join(f"{m.path or '(root)'}: expected {m.expected!r}, got {m.actual!r}"
                                              for m in self.mismatches[:5]))

    def render(self) -> str:
        head = "PASS" if self.passed else "FAIL"
        lines = [f"{head}: {self.trigger} round trip on {self.target}"]
        lines.append(f"  input:    {self.input}")
        if self.output:
            lines.append(f"  output:   {self.output}")
        if self.latency_ms is not None:
            lines.append(f"  latency:  {self.latency_ms:.0f} ms")
        if self.deployment:
            lines.append(f"  answered by: {self.deployment}")
        lines.append(f"  tolerance: {self.tolerance:g}")
        if self.error:
            lines.append(f"  error:    {self.error}")
        if self.mismatches:
            lines.append(f"  {len(self.mismatches)} difference(s) (path: expected vs actual):")
            for m in self.mismatches[:20]:
                lines.append(f"    {m.path or '(root)'}: {_short(m.expected)} vs {_short(m.actual)}  [{m.reason}]")
            if len(self.mismatches) > 20:
                lines.append(f"    ... and {len(self.mismatches) - 20} more")
        return redact("\n".join(lines))


def _short(value: Any, limit: int = 80) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare(expected: Any, actual: Any, tolerance: float, path: str = "") -> list[Mismatch]:
    """Structural comparison; numbers match within ``tolerance`` (absolute or relative)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return [] if expected is actual else [Mismatch(path, expected, actual, "different value")]
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        if math.isclose(expected, actual, rel_tol=tolerance, abs_tol=tolerance):
            return []
        return [Mismatch(path, expected, actual, f"differs by {abs(expected - actual):.6g} > {tolerance:g}")]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[Mismatch] = []
        for k in expected:
            if k not in actual:
                out.append(Mismatch(f"{path}.{k}", expected[k], None, "missing in output"))
            else:
                out += compare(expected[k], actual[k], tolerance, f"{path}.{k}")
        out += [Mismatch(f"{path}.{k}", None, actual[k], "not expected") for k in actual if k not in expected]
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [Mismatch(path, expected, actual, f"length {len(actual)}, expected {len(expected)}")]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += compare(e, a, tolerance, f"{path}[{i}]")
        return out
    if type(expected) is not type(actual):
        return [Mismatch(path, expected, actual, f"type {type(actual).__name__}, expected {type(expected).__name__}")]
    return [] if expected == actual else [Mismatch(path, expected, actual, "different value")]


def judge(report: TestReport, expected: Any, body: bytes) -> TestReport:
    report.answer = body
    if isinstance(expected, bytes):
        report.actual = body
        if body != expected:
            report.mismatches = [Mismatch("", expected, body, "bytes differ")]
    else:
        try:
            report.actual = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            report.actual = body.decode("utf-8", "replace")
            report.mismatches = [Mismatch("", expected, report.actual, f"output is not JSON ({e})")]
        else:
            report.mismatches = compare(expected, report.actual, report.tolerance)
    report.passed = not report.mismatches and report.error is None
    return report


def _storage_error(service: BlobServiceClient, e: Exception) -> StorageError:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return StorageError(
        redact(f"storage account {describe(service)} failed: {type(e).__name__}: {first}"),
        hint="is the storage emulator (or account) running and the connection string right?",
    )


# A role assignment made by the deploy (Storage Blob Data Contributor for the identity running the test) can take
# minutes to apply in Azure; until then the upload is refused with one of these codes.
PERMISSION_PENDING = frozenset({"AuthorizationPermissionMismatch", "AuthorizationFailure"})
ROLE_RETRY_FIRST = 5.0  # seconds before the first retry; doubled up to 30 s


def while_role_applies(attempt: Callable[[], None], refusal: Callable[[Exception], str | None], *,
                       role_wait: float, progress: Progress | None, waiting: str,
                       give_up: Callable[[str], Exception]) -> None:
    """Run ``attempt``; while it fails with an error ``refusal`` names (a role granted moments ago is not applied
    yet: the reason), say ``waiting`` and try again with a growing delay, for up to ``role_wait`` s, then raise
    ``give_up(reason)``. Any other error is raised as it is."""
    deadline = time.monotonic() + role_wait
    delay = ROLE_RETRY_FIRST
    while True:
        try:
            attempt()
            return
        except Exception as e:
            reason = refusal(e)
            if reason is None:
                raise
            if time.monotonic() + delay > deadline:
                raise give_up(reason) from None
            if progress:
                progress(f"  {reason}: {waiting} (a new role assignment can take minutes to apply); trying again in "
                         f"{delay:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


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
    assert trigger.type == "blob"
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


def _post(report: TestReport, url: str, *, timeout: float, **kwargs: object) -> httpx.Response | None:
    """POST for a test; records latency, or the failure (unreachable, non-200) on the report."""
    started = time.perf_counter()
    try:
        resp = httpx.post(url, timeout=timeout, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as e:
        report.error = redact(f"request to {url} failed: {type(e).__name__}: {e}")
        return None
    report.latency_ms = (time.perf_counter() - started) * 1000
    if resp.status_code != 200:
        report.error = f"HTTP {resp.status_code}: {resp.text[:500]}"
        report.actual = resp.text
        return None
    return resp


def run_http_test(project: Project, url: str, *, key: str | None = None, timeout: float = 60.0,
                  deployment: str | None = None, progress: Progress | None = None) -> TestReport:
    """POST the sample to ``url``. ``deployment``: only an answer whose ``x-modelfunc-deployment`` header names
    it counts; an answer from anything else (the previous image) is set aside and the request sent again."""
    expected = load_expected(project)
    report = TestReport(False, "http", redact(url), str(project.sample_input.relative_to(project.root)),
                        tolerance=project.config.samples.tolerance, expected=expected)
    headers = {"content-type": "application/json"}
    if key:
        headers["x-functions-key"] = key
    started = time.perf_counter()
    while True:
        resp = _post(report, url, timeout=timeout, content=project.sample_input.read_bytes(), headers=headers)
        if resp is None:
            return report
        report.deployment = resp.headers.get(DEPLOYMENT_HEADER) or None
        if not deployment or report.deployment == deployment:
            return judge(report, expected, resp.content)
        if answered_elsewhere(report, deployment, started=started, timeout=timeout, progress=progress,
                              then="asking again"):
            return report
        time.sleep(min(2.0, max(timeout - (time.perf_counter() - started), 0)))


def answered_elsewhere(report: TestReport, deployment: str, *, started: float, timeout: float,
                       progress: Progress | None, then: str) -> bool:
    """An answer from another deployment than ``deployment`` (the previous image, still answering): True, with the
    report's error set, once ``timeout`` is spent; else says so and returns False (the caller tries again)."""
    who = report.deployment or "an app that names no deployment"
    if time.perf_counter() - started >= timeout:
        report.error = f"the answer came from {who}, not from deployment {deployment}: the previous image " \
                       "is still answering"
        return True
    if progress:
        progress(f"  answered by {who}, not {deployment}; {then}")
    return False


def run_invoke_test(project: Project, host_url: str, function_name: str, *, timeout: float = 60.0) -> TestReport:
    """Invoke a Service Bus function through the local host's admin API and check its output message."""
    trigger = project.trigger
    assert trigger.type == "service-bus-queue"
    expected = load_expected(project)
    url = f"{host_url.rstrip('/')}/admin/functions/{function_name}"
    report = TestReport(False, "service-bus-queue", url, f"queue {trigger.input_queue} (invoked locally)",
                        f"queue {trigger.output_queue}", tolerance=project.config.samples.tolerance,
                        expected=expected)
    resp = _post(report, url, timeout=timeout, json={"input": sample_text(project)})
    if resp is None:
        return report
    message = resp.json().get("outputs", {}).get(trigger.output_queue)
    if message is None:
        report.error = f"the function sent nothing to {trigger.output_queue!r}"
        return report
    if isinstance(message, dict):  # a message that is not UTF-8 text comes back in base64
        return judge(report, expected, base64.b64decode(message["base64"]))
    return judge(report, expected, message.encode("utf-8"))


def round_trip(project: Project, *, connection_string: str | None = None, url: str | None = None,
                function_key: str | None = None, host_url: str | None = None, timeout: float = 60.0,
                keep: bool = False, progress: Progress | None = None, account_url: str | None = None,
                credential: Any = None, deployment: str | None = None) -> TestReport:
    """The round trip the project's trigger calls for. ``host_url`` (a local host) also gives the HTTP URL.

    Blob trigger: ``account_url`` + ``credential`` (a TokenCredential) reach the storage by identity
    instead of a connection string. ``deployment``: only answers from that deployment count (blob and HTTP).
    """
    trigger = project.trigger
    if trigger.type == "blob" and account_url:
        return run_blob_test(project, None, timeout=timeout, keep=keep, progress=progress, account_url=account_url,
                             credential=credential, deployment=deployment)
    if trigger.type == "blob":
        conn = connection_string or os.environ.get(trigger.connection)
        if not conn:
            raise ConfigError(f"no storage connection string: give one (--connection-string or "
                              f"MODELFUNC_CONNECTION_STRING), or set the trigger's setting {trigger.connection}")
        return run_blob_test(project, conn, timeout=timeout, keep=keep, progress=progress, deployment=deployment)
    if trigger.type == "http":
        url = url or (f"{host_url.rstrip('/')}/api/{trigger.route}" if host_url else None)
        if not url:
            raise ConfigError(f"the HTTP trigger is tested with a request: give the function URL, e.g. "
                              f"http://<host>/api/{trigger.route}")
        return run_http_test(project, url, key=function_key, timeout=timeout, deployment=deployment,
                             progress=progress)
    if not host_url:
        raise ConfigError("no Service Bus emulator exists offline: give the base URL of `modelfunc serve` to "
                          "invoke the function through its admin API")
    from .appgen import FUNCTION_NAMES

    return run_invoke_test(project, host_url, FUNCTION_NAMES[trigger.type], timeout=timeout)


def write_report(report: TestReport, path: Path) -> None:
    """The report as JSON (``to_dict``: redacted), and once more through the redactor as written (JSON escapes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(report.to_dict(), indent=2)) + "\n", encoding="utf-8")
