"""The Markdown a step adds to the job's summary: one renderer per domain object, each a pure function.

Values are HTML-escaped and table pipes neutralised (a cell holds user data: paths, names, answers).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any


def _cell(value: Any, limit: int = 200) -> str:
    """A table cell holding ``value`` as code (JSON, so "1" and 1 differ): HTML-escaped, pipes neutralised."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    text = html.escape(text).replace("|", "&#124;").replace("\r", "").replace("\n", "<br>")
    return f"<code>{text}</code>"


def _text(value: Any) -> str:
    return html.escape(str(value)).replace("|", "&#124;").replace("\n", " ")


def summary_for_error(heading: str, message: str, file: str | None = None, line: int | None = None) -> str:
    """A failed step: its heading (``modelfunc: ConfigError``), the message and hint, where (file and line)."""
    where = f" in `{file}`" + (f" line {line}" if line else "") if file else ""
    body = html.escape(message).replace("|", "&#124;").replace("\n", "<br>")
    return f"### ❌ {_text(heading)}\n\n{body}{where}\n"


def summary_for_test(report: Any) -> str:
    """The sample test as Markdown: the verdict, where and how fast, and expected vs actual.

    ``report`` is a ``roundtrip.TestReport`` or its ``to_dict()`` (e.g. read back from a JSON report).
    """
    data: dict[str, Any] = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    passed = bool(data.get("passed"))
    verdict = "✅ PASS" if passed else "❌ FAIL"
    out = [f"### modelfunc sample test: {verdict}", "", "| | |", "|---|---|"]
    out.append(f"| trigger | {_text(data.get('trigger'))} |")
    out.append(f"| target | {_text(data.get('target'))} |")
    out.append(f"| input | {_text(data.get('input'))} |")
    if data.get("output"):
        out.append(f"| output | {_text(data['output'])} |")
    latency = data.get("latency_ms")
    out.append(f"| latency | {f'{latency:.0f} ms' if latency is not None else '—'} |")
    out.append(f"| tolerance | {data.get('tolerance', 0):g} |")
    if data.get("error"):
        out.append(f"| error | {_text(data['error'])} |")
    out += ["", "| path | expected | actual | result |", "|---|---|---|---|"]
    mismatches = data.get("mismatches") or []
    if mismatches:
        for m in mismatches[:50]:
            out.append(f"| {_text(m.get('path') or '(root)')} | {_cell(m.get('expected'))} | "
                       f"{_cell(m.get('actual'))} | {_text(m.get('reason'))} |")
        if len(mismatches) > 50:
            out.append(f"| … | | | {len(mismatches) - 50} more |")
    else:
        result = "match" if passed else "no output"
        out.append(f"| (root) | {_cell(data.get('expected'))} | {_cell(data.get('actual'))} | {result} |")
    return "\n".join(out) + "\n"


def summary_for_image(summary: Mapping[str, Any]) -> str:
    """``image.Packaged.summary()`` as Markdown: the reference to deploy, its digest, layers, self-test.

    The layers are its ``layer_tars`` (name → digest of the layer's tar), marked with the bytes pushed when
    ``pushed_layers`` (short digest → size) has them."""
    out = ["### modelfunc package", "", "| | |", "|---|---|"]
    reference = summary.get("reference")
    out.append(f"| image | {f'<code>{_text(reference)}</code>' if reference else '(not built)'} |")
    if summary.get("digest"):
        out.append(f"| digest | {_text(summary['digest'])} |")
    if summary.get("tag"):
        out.append(f"| built as | {_text(summary['tag'])} |")
    out.append(f"| app | {_text(summary.get('app'))} |")
    test = summary.get("self_test")
    if test is not None:
        out.append(f"| self-test | {'✅ passed' if test.get('passed') else '❌ failed'}"
                   + (f" in {test['elapsed_ms']} ms" if test.get("elapsed_ms") is not None else "") + " |")
    layers = summary.get("layer_tars") or {}
    if layers:
        pushed = summary.get("pushed_layers") or {}
        out += ["", "| layer | digest | pushed |", "|---|---|---|"]
        for name, digest in layers.items():
            short = str(digest).split(":")[-1][:12]
            size = pushed.get(short)
            out.append(f"| {_text(name)} | {_text(digest)} | {f'{size} bytes' if size is not None else '—'} |")
    return "\n".join(out) + "\n"


def summary_for_golden(golden: Any) -> str:
    """``golden.Golden`` as Markdown: one column per place (run() directly, local host, image, slot)."""
    from ..golden import PLACES

    failure = golden.first_failure()
    verdict = "✅ the same answer everywhere" if failure is None else "❌ the answers differ"
    out = [f"### modelfunc golden answer: {verdict}", "",
           f"{_text(golden.sample)}, tolerance {golden.tolerance:g}", "",
           "| | " + " | ".join(PLACES) + " |", "|---|" + "---|" * len(PLACES)]
    for label, cells in golden.rows():
        code = label in ("answer", "SHA-256")  # what came back, as code; verdicts and reasons as text
        out.append(f"| {label} | " + " | ".join(
            f"<code>{_text(c)}</code>" if code and c != "-" and not c.startswith(("not run", "FAILED")) else _text(c)
            for c in cells) + " |")
    if failure:
        out += ["", f"First difference: {_text(failure)}"]
    return "\n".join(out) + "\n"


def summary_for_deployment(summary: Mapping[str, Any], plan: str = "") -> str:
    """``SlotDeployment.summary()`` (and the plan it carried out) as Markdown: where the image runs, its state."""
    out = ["### modelfunc deploy", "", "| | |", "|---|---|"]
    for label, key in (("app", "app_name"), ("resource group", "resource_group"), ("slot", "slot"),
                       ("image", "image"), ("state", "state"), ("slot URL", "slot_url"), ("app URL", "app_url")):
        value = summary.get(key)
        if value not in (None, ""):
            out.append(f"| {label} | {f'<code>{_text(value)}</code>' if key == 'image' else _text(value)} |")
    functions = summary.get("functions") or []
    out.append(f"| functions | {_text(', '.join(functions)) if functions else '—'} |")
    if plan.strip():
        out += ["", "<details><summary>changes</summary>", "", "```", plan.strip(), "```", "", "</details>"]
    return "\n".join(out) + "\n"


def summary_for_swap(slot: str, app_url: str, image: str) -> str:
    """A swap: which slot became production, and what production now runs."""
    return f"### modelfunc: `{slot}` swapped into production\n\n{app_url} runs `{image}`\n"


def summary_for_skipped_test(name: str) -> str:
    """target local without the sample test (run-blob-test: false)."""
    return f"### modelfunc: {name} packaged; sample test skipped\n"
