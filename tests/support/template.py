"""The cookiecutter template (template/) as the tests bake it: its context read from cookiecutter.json (the matrix of
choices the template tests render is generated from it, not typed again), and cookiecutter's Python API kept to the
test's tmp dir."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml
from cookiecutter.main import cookiecutter

from support.core import ROOT

TEMPLATE = ROOT / "template"
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.__project_slug}}"
CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
PROMPTS = CONTEXT["__prompts__"]


def choices(question: str) -> tuple[str, ...]:
    """The answers cookiecutter.json offers for a multiple-choice question, the default first."""
    offered = CONTEXT[question]
    assert isinstance(offered, list) and offered, f"template/cookiecutter.json: {question} is not a choice"
    return tuple(offered)


TRIGGERS = choices("trigger")
CACHES = choices("cache")
# What the template tests bake and check: every trigger × cache choice of cookiecutter.json.
MATRIX = [(trigger, cache) for trigger in TRIGGERS for cache in CACHES]


def cookiecutter_config(tmp: Path) -> Path:
    """A cookiecutter config that keeps its replay files in tmp, not in the home directory."""
    config = tmp / "cookiecutter-config.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump({"cookiecutters_dir": str(tmp / "cookiecutters"),
                                          "replay_dir": str(tmp / "replay")}), encoding="utf-8")
    return config


@contextlib.contextmanager
def temp_dir(path: Path) -> Iterator[None]:
    """cookiecutter leaves each rendered hook script in the temp dir: keep them in the test's tmp_path."""
    saved, tempfile.tempdir = tempfile.tempdir, str(path)
    try:
        yield
    finally:
        tempfile.tempdir = saved


def bake(out: Path, **values: str) -> Path:
    """Generate a project with cookiecutter's Python API, as `cookiecutter <repo> --directory template` does."""
    out.mkdir(parents=True, exist_ok=True)
    with temp_dir(out.parent):
        return Path(cookiecutter(str(ROOT), directory="template", no_input=True, extra_context=values,
                                 output_dir=str(out), config_file=str(cookiecutter_config(out.parent))))
