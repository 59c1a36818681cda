"""The GitHub Action's tests: ``act``, a job workspace with action.yml run by the act-compatible harness
(support/act_harness.py), the installs faked with pytest-subprocess's ``fp``."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.act_harness import Act


@pytest.fixture
def act(tmp_path: Path, fp) -> Act:  # noqa: ANN001
    return Act(tmp_path, fp)
