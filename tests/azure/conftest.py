"""Deploying to Azure, by contract: the ARM model in-process (``arm``) or over HTTPS (``arm_server``), both from
support/plugin.py and told by ``@pytest.mark.arm(...)`` what the apps' images list; ``project``, the blob example
loaded, for the tests that deploy it."""

from __future__ import annotations

import pytest
from modelfunc.config import load_project


@pytest.fixture
def project(example):  # noqa: ANN001, ANN201
    """The blob example (examples/diabetes-blob), loaded: a private copy, so a test may change it."""
    return load_project(example("diabetes-blob"))
