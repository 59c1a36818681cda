"""How a long step reports progress: a callable taking one line of text (the CLI prints it to stderr, the action to
the log). Every module with a long step takes one, defaulting to :func:`quiet`."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """Progress that says nothing."""
