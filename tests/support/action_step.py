"""An action step run in-process, as the runner starts it: scripts/<name>.py loaded from its path, GITHUB_OUTPUT and
GITHUB_STEP_SUMMARY pointing at files, inputs as INPUT_* variables."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from support.core import ROOT


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"modelfunc_script_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIM` ... `DELIM` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)  # ValueError (a failing test) when the block is not closed
            out[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            out[name] = value
            i += 1
    return out


class Step:
    """One action step's environment: the files the runner gives it and the inputs."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.output = root / "github_output"
        self.summary = root / "step_summary"
        self.output.touch()
        self.summary.touch()
        self.mp = monkeypatch
        for key in list(os.environ):
            if key.startswith(("INPUT_", "GITHUB_")) or key in ("RUNNER_TEMP", "MODELFUNC_CONNECTION_STRING"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("GITHUB_OUTPUT", str(self.output))
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(self.summary))
        monkeypatch.setenv("GITHUB_WORKSPACE", str(root))
        monkeypatch.setenv("RUNNER_TEMP", str(root / "runner-temp"))
        (root / "runner-temp").mkdir()

    def inputs(self, **values: str) -> None:
        for name, value in values.items():
            self.mp.setenv(f"INPUT_{name.upper()}", value)

    def outputs(self) -> dict[str, str]:
        return parse_outputs(self.output.read_text(encoding="utf-8"))

    def summary_text(self) -> str:
        return self.summary.read_text(encoding="utf-8")
