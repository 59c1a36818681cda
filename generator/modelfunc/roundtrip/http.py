"""The HTTP round trip: POST the sample to the function URL."""

from __future__ import annotations

import time

import httpx

from ..config import Project
from ..redact import redact
from ..runtime.modelfunc_runtime import DEPLOYMENT_HEADER
from ..samples import load_expected
from .report import Progress, TestReport, answered_elsewhere, judge


def post(report: TestReport, url: str, *, timeout: float, **kwargs: object) -> httpx.Response | None:
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
        resp = post(report, url, timeout=timeout, content=project.sample_input.read_bytes(), headers=headers)
        if resp is None:
            return report
        report.deployment = resp.headers.get(DEPLOYMENT_HEADER) or None
        if not deployment or report.deployment == deployment:
            return judge(report, expected, resp.content)
        if answered_elsewhere(report, deployment, started=started, timeout=timeout, progress=progress,
                              then="asking again"):
            return report
        time.sleep(min(2.0, max(timeout - (time.perf_counter() - started), 0)))
