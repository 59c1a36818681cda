"""Compare azmlinfsrv's answer with modelfunc's: status, body (JSON-equal, else bytes), content type, the script's own
headers and x-ms-run-function-failed. Header values are compared as RFC 9110 §5.3 combines repeated field lines
(joined with ", "), except Set-Cookie, compared line by line.

A blob or a message answers with a body only: what the blob and message paths did (triggers.py) is read as an answer
(trigger_answer) and compared with azmlinfsrv's by status and body."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from .catalogue import Req, Script, blob_name, trigger_requests
from .harness import Answer, Run


@dataclass(frozen=True)
class Diff:
    script: str
    request: str
    facet: str  # start, answer, status, body, content-type, header:<name>
    oracle: Any
    modelfunc: Any
    trigger: str = "http"  # http, blob, message: modelfunc's side of the comparison

    def __str__(self) -> str:
        side = "modelfunc" if self.trigger == "http" else f"modelfunc's {self.trigger} path"
        return f"{self.script} / {self.request} / {self.facet}: azmlinfsrv {short(self.oracle)} | {side} " \
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


def _diffs(script: Script, req: Req, oracle: Answer, other: Answer, *trigger: str) -> list[Diff]:
    """Where ``other`` answers differently from azmlinfsrv: whether it answered, the status and the body; over HTTP (no
    ``trigger``) also the content type, the script's own headers and x-ms-run-function-failed."""
    diffs: list[Diff] = []

    def add(facet: str, a: Any, b: Any) -> None:
        if a != b:
            diffs.append(Diff(script.name, req.id, facet, a, b, *trigger))

    if oracle.status is None or other.status is None:
        add("answer", oracle.error or "answered", other.error or "answered")
        return diffs
    add("status", oracle.status, other.status)
    o_body, m_body = body_view(oracle), body_view(other)
    add("body", o_body[1] if o_body[0] == m_body[0] else o_body, m_body[1] if o_body[0] == m_body[0] else m_body)
    if trigger:
        return diffs
    add("content-type", content_type(oracle), content_type(other))
    for name in script.headers:
        add(f"header:{name}", header_value(oracle, name), header_value(other, name))
    add("header:x-ms-run-function-failed", run_failed(oracle), run_failed(other))
    return diffs


def compare(script: Script, req: Req, oracle: Answer, modelfunc: Answer) -> list[Diff]:
    return _diffs(script, req, oracle, modelfunc)


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


# ---------------------------------------------------------------------------------- the other triggers

MESSAGE_FAILED = re.compile(r"RuntimeError: scoring message \S* failed with status (\d+): (.*)", re.S)


def trigger_answer(trigger: str, req: Req, oracle: Answer, record: dict[str, Any]) -> Answer:
    """What the blob or message path answered, as an HTTP answer: an output blob or message is a success with its body
    (it carries no status: it counts as azmlinfsrv's own 2xx/3xx); an error record (blob) or the exception that has
    the message retried and dead-lettered has the status and body of the failure. Anything else — an exception out
    of a blob function, no output at all, both outputs, an exception that is not the runtime's failure — is no
    answer (status None, the error says what happened)."""
    outputs = {name: (kind, base64.b64decode(data)) for name, (kind, data) in record["outputs"].items()}
    success = oracle.status if oracle.status is not None and oracle.status < 400 else 200
    raised = record["raised"]
    if trigger == "blob":
        if raised:
            return Answer(None, error=f"the blob function raised {raised} (the host retries it, then gives up on it)")
        if set(outputs) - {"stamp"} == {"output"}:
            return Answer(success, body=outputs["output"][1])
        if set(outputs) - {"stamp"} != {"error"}:
            return Answer(None, error=f"the blob function set the outputs {sorted(outputs)}")
        error = json.loads(outputs["error"][1])
        if error.get("blob") != blob_name(req) or not isinstance(error.get("status"), int):
            return Answer(None, error=f"an error record that does not name the blob and the status: {error}")
        response = error.get("response")
        if isinstance(response, dict) and response.get("error_id") != error.get("error_id"):
            return Answer(None, error=f"an error record whose error_id is not its answer's: {error}")
        body = response.encode() if isinstance(response, str) else json.dumps(response).encode()
        return Answer(error["status"], body=body)
    if raised:
        failed = MESSAGE_FAILED.fullmatch(raised)
        if failed is None:
            return Answer(None, error=f"the message function raised {raised} (the message is retried, then "
                                      "dead-lettered)")
        return Answer(int(failed.group(1)), body=failed.group(2).encode())
    if "output" not in outputs:
        return Answer(None, error="the message function sent no message and raised nothing")
    kind, body = outputs["output"]
    if kind != "bytes":  # function_app.py declares output: func.Out[bytes]
        return Answer(None, error=f"the output message is a {kind} datum, not the bytes its binding declares")
    return Answer(success, body=body)


def compare_trigger(script: Script, req: Req, trigger: str, oracle: Answer, record: dict[str, Any]) -> list[Diff]:
    return _diffs(script, req, oracle, trigger_answer(trigger, req, oracle, record), trigger)


def compare_triggers(run: Run) -> list[tuple[Diff, Answer]]:
    """Every difference of the blob and message paths from azmlinfsrv's HTTP answers, each with modelfunc's answer."""
    out: list[tuple[Diff, Answer]] = []
    if not all(run.started.values()):  # no HTTP answers to compare with (test_script_answers_as_azmlinfsrv_does says)
        return out
    for trigger, records in sorted(run.triggers.items()):
        for req in trigger_requests(run.script):
            if req.id not in records:
                out.append((Diff(run.script.name, req.id, "answer", "answered", "not driven", trigger),
                            Answer(None, error="not driven")))
                continue
            oracle = run.answers[req.id][0]
            answer = trigger_answer(trigger, req, oracle, records[req.id])
            out += [(d, answer) for d in compare_trigger(run.script, req, trigger, oracle, records[req.id])]
    return out
