"""The ``modelfunc`` command line: thin verbs over the library modules.

``main`` is the group (``modelfunc.cli:main``, the console script); each module below adds its commands to it:
:mod:`.pipeline` (package, serve, blob-test, up), :mod:`.azure_verbs` (deploy, destroy), :mod:`.start` (init,
sample record, new). :mod:`.base` holds what they share.
"""

from __future__ import annotations

from . import azure_verbs, pipeline, start  # noqa: F401  (each adds its commands to main)
from .base import main
from .start import new

__all__ = ["main", "new"]
