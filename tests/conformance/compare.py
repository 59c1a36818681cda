"""Compare azmlinfsrv's answer with modelfunc's: status, body (JSON-equal, else bytes), content type, the script's own
headers and x-ms-run-function-failed. Header values are compared as RFC 9110 §5.3 combines repeated field lines
(joined with ", "), except Set-Cookie, compared line by line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .catalogue import Req, Script
from .harness import Answer, Run


@dataclass(frozen=True)
class Diff:
    script: str
    request: str
    facet: str  # start, answer, status, body, content-type, header:<name>
    oracle: Any
    modelfunc: Any

    def __str__(self) -> str:
        return f"{self.script} / {self.request} / {self.facet}: azmlinfsrv {short(self.oracle)} | modelfunc " \
               f"{short(self.modelfunc)}"


def short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"…({len(text)} chars)"


def body_view(answer: Answer) -> Any:
    """The body as JSON when it parses as JSON (compared by value), else its bytes."""
    try:
        return ("json", json.dumps(json.loads(answer.body), sort_keys=True))
    except (ValueError, UnicodeDecodeError):
        return ("bytes", answer.body)


def content_type(answer: Answer) -> str | None:
    values = answer.header("content-type")
    return "; ".join(p.strip() for p in values[0].lower().split(";")) if values else None


def header_value(answer: Answer, name: str) -> Any:
    values = answer.header(name)
    if name == "set-cookie":
        return values
    return ", ".join(values) if values else None


def run_failed(answer: Answer) -> str:
    values = answer.header("x-ms-run-function-failed")
    return values[-1].lower() if values else "false"


def compare(script: Script, req: Req, oracle: Answer, modelfunc: Answer) -> list[Diff]:
    diffs: list[Diff] = []

    def add(facet: str, a: Any, b: Any) -> None:
        if a != b:
            diffs.append(Diff(script.name, req.id, facet, a, b))

    if oracle.status is None or modelfunc.status is None:
        add("answer", oracle.error or "answered", modelfunc.error or "answered")
        return diffs
    add("status", oracle.status, modelfunc.status)
    o_body, m_body = body_view(oracle), body_view(modelfunc)
    add("body", o_body[1] if o_body[0] == m_body[0] else o_body, m_body[1] if o_body[0] == m_body[0] else m_body)
    add("content-type", content_type(oracle), content_type(modelfunc))
    for name in script.headers:
        add(f"header:{name}", header_value(oracle, name), header_value(modelfunc, name))
    add("header:x-ms-run-function-failed", run_failed(oracle), run_failed(modelfunc))
    return diffs


def compare_run(run: Run) -> list[Diff]:
    from .catalogue import requests_for

    if not all(run.started.values()):
        if any(run.started.values()):
            return [Diff(run.script.name, "start", "start", run.started["azmlinfsrv"], run.started["modelfunc"])]
        return []
    diffs = []
    for req in requests_for(run.script):
        oracle, modelfunc = run.answers[req.id]
        diffs += compare(run.script, req, oracle, modelfunc)
    return diffs
