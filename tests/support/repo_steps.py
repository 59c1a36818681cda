"""Ways to break a copy of an example model repo, shared by the bad-input tests: each is a Step, a function of the
repo's path that changes one thing (and fails loudly when the example no longer has what it changes)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

BLOB, HTTP, SB = "diabetes-blob", "diabetes-http", "diabetes-servicebus"

Step = Callable[[Path], None]


# ------------------------------------------------------------------ ways to break a repo


def write(rel: str, text: str) -> Step:
    def step(repo: Path) -> None:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text, encoding="utf-8")

    return step


def write_bytes(rel: str, data: bytes) -> Step:
    def step(repo: Path) -> None:
        (repo / rel).write_bytes(data)

    return step


def replace(rel: str, old: str, new: str) -> Step:
    """Replace text that must be there (so a changed example fails loudly instead of testing nothing)."""

    def step(repo: Path) -> None:
        text = (repo / rel).read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} is not in {rel} exactly once:\n{text}"
        (repo / rel).write_text(text.replace(old, new), encoding="utf-8")

    return step


def delete(rel: str) -> Step:
    def step(repo: Path) -> None:
        path = repo / rel
        assert path.exists(), path
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return step


def steps(*parts: Step) -> Step:
    def step(repo: Path) -> None:
        for part in parts:
            part(repo)

    return step
