"""The round trip's report, one shape for every trigger (redacted on the way out), and what the three tests
share: judging an answer, setting aside one from another deployment, and waiting while a role granted moments
ago is applied.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..compare import Mismatch, compare
from ..progress import Progress  # noqa: F401 - the round trips import it from here
from ..redact import redact, redact_data

ROLE_RETRY_FIRST = 5.0  # seconds before the first retry; doubled up to 30 s


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
