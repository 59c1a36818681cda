"""One golden answer, four places: the sample's answer from run() called directly, the local host, the image's
self-test and the staging slot, side by side in one table.

Every place that ran must give the same answer: byte for byte, or (JSON) within the sample's tolerance, compared
with the first place that answered; and each is judged against ``samples.expected`` too. A place that did not run
says why (not this target, no Docker engine, ...). The table travels between the action's steps as JSON
(``to_dict``/``from_dict``, written by ``modelfunc.action.handoff``): the package step fills in the first columns,
the test step the slot's, and writes the summary.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .compare import Mismatch, compare
from .errors import GoldenMismatch

DIRECT, LOCAL_HOST, IMAGE, SLOT = "run() directly", "local host", "image self-test", "staging slot"
PLACES = (DIRECT, LOCAL_HOST, IMAGE, SLOT)


@dataclass
class Answer:
    """One place's answer to the sample, or why there is none."""

    where: str = ""  # what answered, e.g. "this Python", "http://127.0.0.1:7071", "image sha256:…"
    body: bytes | None = None
    status: int | None = None
    error: str | None = None  # it ran and did not answer (a failure), or answered with a non-200 status
    skipped: str | None = None  # it did not run, and why

    @property
    def answered(self) -> bool:
        return self.body is not None and self.error is None

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.body).hexdigest() if self.body is not None else None

    def to_dict(self) -> dict[str, Any]:
        fields = (("where", self.where), ("status", self.status), ("error", self.error), ("skipped", self.skipped))
        data: dict[str, Any] = {k: v for k, v in fields if v not in (None, "")}
        if self.body is not None:
            data["body_base64"] = base64.b64encode(self.body).decode("ascii")
            data["sha256"] = self.sha256
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        body = data.get("body_base64")
        return cls(where=data.get("where", ""), body=base64.b64decode(body) if body is not None else None,
                   status=data.get("status"), error=data.get("error"), skipped=data.get("skipped"))


def _parse(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return False, None


def differences(reference: bytes, body: bytes, tolerance: float) -> list[Mismatch] | None:
    """None when ``body`` is byte-identical to ``reference``; [] when it is the same JSON within ``tolerance``;
    else the differences (a single whole-body one when either is not JSON)."""
    if body == reference:
        return None
    (ok_ref, ref), (ok_body, value) = _parse(reference), _parse(body)
    if ok_ref and ok_body:
        return compare(ref, value, tolerance)
    return [Mismatch("", reference.decode("utf-8", "replace"), body.decode("utf-8", "replace"), "bytes differ")]


@dataclass
class Verdict:
    place: str
    same: str  # "reference", "identical", "within tolerance", "differs", "" (no answer)
    expected: str  # "matches", "within tolerance", "differs", ""
    detail: str = ""  # the first difference, when there is one


@dataclass
class Golden:
    sample: str
    tolerance: float
    expected: Any  # parsed JSON, or bytes for a non-JSON sample
    answers: dict[str, Answer] = field(default_factory=dict)

    def set(self, place: str, answer: Answer) -> Answer:
        assert place in PLACES, place
        self.answers[place] = answer
        return answer

    def answer(self, place: str) -> Answer:
        return self.answers.get(place) or Answer(skipped="not reached")

    # ------------------------------------------------------------------ judging

    def _vs_expected(self, body: bytes) -> tuple[str, str]:
        if isinstance(self.expected, bytes):
            return ("matches", "") if body == self.expected else ("differs", "bytes differ from the expected output")
        ok, value = _parse(body)
        if not ok:
            return "differs", "the answer is not JSON"
        mismatches = compare(self.expected, value, self.tolerance)
        if mismatches:
            return "differs", _describe(mismatches[0])
        exact = json.dumps(self.expected, sort_keys=True) == json.dumps(value, sort_keys=True)
        return ("matches" if exact else "within tolerance"), ""

    def verdicts(self) -> list[Verdict]:
        out: list[Verdict] = []
        reference: tuple[str, bytes] | None = None
        for place in PLACES:
            a = self.answer(place)
            if not a.answered:
                out.append(Verdict(place, "", "", a.error or ""))
                continue
            assert a.body is not None
            expected, why = self._vs_expected(a.body)
            if reference is None:
                reference = (place, a.body)
                out.append(Verdict(place, "reference", expected, why))
                continue
            found = differences(reference[1], a.body, self.tolerance)
            if found is None:
                out.append(Verdict(place, "identical", expected, why))
            elif not found:
                out.append(Verdict(place, "within tolerance", expected, why))
            else:
                out.append(Verdict(place, "differs", expected, f"vs {reference[0]}: {_describe(found[0])}"))
        return out

    def first_failure(self) -> str | None:
        """The first place that failed, differs from the first answer, or differs from the expected output."""
        for v in self.verdicts():
            a = self.answer(v.place)
            if a.error:
                return f"{v.place} ({a.where or 'no answer'}) failed: {a.error}"
            if v.same == "differs":
                return f"{v.place} ({a.where}) answered differently {v.detail}"
            if v.expected == "differs":
                return f"{v.place} ({a.where}) differs from {self.sample}'s expected output: {v.detail}"
        if not any(self.answer(p).answered for p in PLACES):
            return "no place answered the sample"
        return None

    @property
    def passed(self) -> bool:
        return self.first_failure() is None

    def check(self) -> None:
        """Raise GoldenMismatch naming the first place that differs (the table is in its message)."""
        failure = self.first_failure()
        if failure:
            raise GoldenMismatch(f"the sample's answers differ: {failure}\n{self.render_text()}")

    # ------------------------------------------------------------------ rendering

    def rows(self) -> list[tuple[str, list[str]]]:
        """(label, one cell per place) for each row of the table: where it ran, the answer, its digest, verdicts."""
        verdicts = {v.place: v for v in self.verdicts()}
        rows: dict[str, list[str]] = {"ran on": [], "answer": [], "SHA-256": [], "same answer": [],
                                      "vs expected": []}
        for place in PLACES:
            a, v = self.answer(place), verdicts[place]
            rows["ran on"].append(a.where or "-")
            if a.skipped:
                rows["answer"].append(f"not run: {a.skipped}")
            elif a.error:
                rows["answer"].append(f"FAILED: {_short(a.error, 60)}")
            else:
                rows["answer"].append(_short(a.body.decode("utf-8", "replace") if a.body is not None else "", 40))
            rows["SHA-256"].append((a.sha256 or "")[:12] or "-")
            rows["same answer"].append((f"{v.same}: {v.detail}" if v.same == "differs" else v.same) or "-")
            rows["vs expected"].append((f"{v.expected}: {v.detail}" if v.expected == "differs" else v.expected)
                                       or "-")
        return list(rows.items())

    def render_text(self) -> str:
        head = "PASS" if self.passed else "FAIL"
        title = f"{head}: the answer to {self.sample} in each place (tolerance {self.tolerance:g})"
        rows = self.rows()
        label_w = max(len(label) for label, _ in rows)
        widths = [max(len(PLACES[i]), *(len(cells[i]) for _, cells in rows)) for i in range(len(PLACES))]
        header = "  ".join(p.ljust(w) for p, w in zip(PLACES, widths, strict=True))
        lines = [title, ("  " + " " * label_w + "  " + header).rstrip()]
        for label, cells in rows:
            lines.append("  " + label.ljust(label_w) + "  "
                         + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        failure = self.first_failure()
        if failure:
            lines.append(f"  first difference: {failure}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ hand-off between action steps

    def to_dict(self) -> dict[str, Any]:
        expected = ({"bytes_base64": base64.b64encode(self.expected).decode("ascii")}
                    if isinstance(self.expected, bytes) else {"json": self.expected})
        return {"sample": self.sample, "tolerance": self.tolerance, "expected": expected, "passed": self.passed,
                "first_failure": self.first_failure(),
                "answers": {p: a.to_dict() for p, a in self.answers.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Golden:
        exp = data["expected"]
        expected = base64.b64decode(exp["bytes_base64"]) if "bytes_base64" in exp else exp["json"]
        golden = cls(data["sample"], float(data["tolerance"]), expected)
        for place, answer in data.get("answers", {}).items():
            if place not in PLACES:
                raise ValueError(f"unknown place {place!r}")
            golden.answers[place] = Answer.from_dict(answer)
        return golden


def for_project(project: Any) -> Golden:
    """An empty table for the project's sample."""
    from .config import load_expected

    return Golden(str(project.sample_input.relative_to(project.root)), project.config.samples.tolerance,
                  load_expected(project))


def from_report(report: Any, where: str) -> Answer:
    """A place's answer from a round-trip TestReport (local host or slot)."""
    if report.answer is None:
        return Answer(where=where, error=report.error or "no answer")
    return Answer(where=where, body=report.answer, status=200)


def from_selftest(result: dict[str, Any], part: str, where: str) -> Answer:
    """A place's answer from the runtime's self-test result: ``direct`` or ``function``."""
    if not result.get(part):
        return Answer(where=where, error=result.get("error") or "the self-test gave no result")
    got = result[part]
    body = base64.b64decode(got["body_base64"]) if "body_base64" in got else got.get("body", "").encode("utf-8")
    if got.get("status") != 200 or got.get("error"):
        return Answer(where=where, body=body, status=got.get("status"),
                      error=got.get("error") or f"status {got.get('status')}: {_short(got.get('body', ''), 200)}")
    return Answer(where=where, body=body, status=200)


def with_image(golden: Golden, packaged: Any, *, direct_too: bool) -> Golden:
    """Fill in the image's column from a package's self-test (``image.Packaged``); with ``direct_too``, also
    run()'s direct answer from inside the image (where no other Python has the app's dependencies)."""
    test, built = packaged.test, packaged.built
    where = f"image {built.image_id.split(':')[-1][:12]}" if built is not None else "image"
    if test is None:
        golden.set(IMAGE, Answer(where=where, skipped="no self-test ran"))
        return golden
    golden.set(IMAGE, from_selftest(test.result, "function", where))
    if direct_too:
        golden.set(DIRECT, from_selftest(test.result, "direct", f"{where} (no function)"))
    return golden


def _describe(m: Mismatch) -> str:
    return f"{m.path or '(root)'}: {_short(json.dumps(m.expected, default=str), 30)} vs " \
           f"{_short(json.dumps(m.actual, default=str), 30)} ({m.reason})"


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
