"""The round-trip test of a running app: send the sample, get the output, compare with the expected one.

One report shape for every trigger, so the console, the JSON report and the GitHub step summary
render the same facts:

* blob (blob.py): upload ``samples.input`` to ``<input container>/<unique>``, wait for the output blob named by
  the output pattern (or the error record), compare; works against any storage connection string;
* http (http.py): POST the sample to the function URL;
* service-bus-queue (servicebus.py): invoke the function through the local host's admin API (no emulator
  exists); in Azure, the sample to the slot's input queue and the answer from its output queue.

What a report says goes through the secret redactor (``redact.py``) on the way out — the console, ``--report``
JSON, the step summary — so an account key, a SAS signature or a function key in a URL is never printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..config import Project
from ..errors import ConfigError
from ..redact import redact
from .http import run_http_test
from .report import Progress, TestReport

__all__ = ["TestReport", "round_trip", "write_report"]


def round_trip(project: Project, *, connection_string: str | None = None, url: str | None = None,
                function_key: str | None = None, host_url: str | None = None, timeout: float = 60.0,
                keep: bool = False, progress: Progress | None = None, account_url: str | None = None,
                credential: Any = None, deployment: str | None = None) -> TestReport:
    """The round trip the project's trigger calls for. ``host_url`` (a local host) also gives the HTTP URL.

    Blob trigger: ``account_url`` + ``credential`` (a TokenCredential) reach the storage by identity
    instead of a connection string. ``deployment``: only answers from that deployment count (blob and HTTP).
    """
    trigger = project.trigger
    if trigger.has_storage:  # here: the storage SDK is imported by the round trips that use it, not by an HTTP one
        from .blob import run_blob_test
    if trigger.has_storage and account_url:
        return run_blob_test(project, None, timeout=timeout, keep=keep, progress=progress, account_url=account_url,
                             credential=credential, deployment=deployment)
    if trigger.has_storage:
        conn = connection_string or os.environ.get(trigger.connection)
        if not conn:
            raise ConfigError(f"no storage connection string: give one (--connection-string or "
                              f"MODELFUNC_CONNECTION_STRING), or set the trigger's setting {trigger.connection}")
        return run_blob_test(project, conn, timeout=timeout, keep=keep, progress=progress, deployment=deployment)
    if trigger.serves_http:
        url = url or (trigger.url(host_url) if host_url else None)
        if not url:
            raise ConfigError(f"the HTTP trigger is tested with a request: give the function URL, e.g. "
                              f"http://<host>/api/{trigger.route}")
        return run_http_test(project, url, key=function_key, timeout=timeout, deployment=deployment,
                             progress=progress)
    from .servicebus import run_invoke_test

    if not host_url:
        raise ConfigError("no Service Bus emulator exists offline: give the base URL of `modelfunc serve` to "
                          "invoke the function through its admin API")
    return run_invoke_test(project, host_url, trigger.function_name, timeout=timeout)


def write_report(report: TestReport, path: Path) -> None:
    """The report as JSON (``to_dict``: redacted), and once more through the redactor as written (JSON escapes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(report.to_dict(), indent=2)) + "\n", encoding="utf-8")
