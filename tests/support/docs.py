"""Tables of docs/*.md generated from the tests' own lists: the block between two HTML comments, checked and written."""

from __future__ import annotations

import re
from pathlib import Path


def _block(start: str, end: str) -> re.Pattern[str]:
    return re.compile(re.escape(start) + r"\n(.*?)\n" + re.escape(end), re.S)


def check_generated_block(doc: Path, start: str, end: str, table: str, source: str, write: str) -> None:
    """The block of ``doc`` between ``start`` and ``end`` is ``table`` (made from ``source``), or the test fails
    saying how to regenerate it (``write``)."""
    match = _block(start, end).search(doc.read_text(encoding="utf-8"))
    assert match, f"{doc} has no {start} … {end} block"
    assert match.group(1) == table, f"{doc.name}'s table differs from {source}: regenerate it with `{write}`"


def write_generated_block(doc: Path, start: str, end: str, table: str) -> None:
    text = doc.read_text(encoding="utf-8")
    doc.write_text(_block(start, end).sub(lambda _: f"{start}\n{table}\n{end}", text), encoding="utf-8")
    print(f"wrote {doc}")
