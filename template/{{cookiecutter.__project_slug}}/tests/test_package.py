"""`modelfunc package` renders this repo into a Functions app, and that app scores the sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SELFTEST_MARK = "MODELFUNC-SELFTEST "


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package") / "build"
    proc = subprocess.run(
        [sys.executable, "-m", "modelfunc", "package", str(ROOT), "--no-build", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_package_renders_the_app_and_the_image_build_context(build: Path) -> None:
    app = build / "app"
    for name in ("function_app.py", "host.json", "requirements.txt", "score.py", "modelfunc_runtime.py"):
        assert (app / name).is_file(), name
    assert (app / "model" / "model.pkl").read_bytes() == (ROOT / "model" / "model.pkl").read_bytes()
    assert "scikit-learn==1.9.1" in (app / "requirements.txt").read_text(encoding="utf-8")
    assert (build / "Dockerfile").is_file()
{%- if cookiecutter.trigger == "blob" %}
    assert "@app.blob_trigger(" in (app / "function_app.py").read_text(encoding="utf-8")
{%- elif cookiecutter.trigger == "http" %}
    assert "@app.route(" in (app / "function_app.py").read_text(encoding="utf-8")
{%- else %}
    assert "@app.service_bus_queue_trigger(" in (app / "function_app.py").read_text(encoding="utf-8")
{%- endif %}


def test_the_packaged_app_scores_the_sample(build: Path) -> None:
    """The self-test the image runs: import the app as the Functions worker does, run init(), score the sample."""
    sample = ROOT / "samples" / "input.json"  # samples.input in modelfunc.yaml
    proc = subprocess.run(
        [sys.executable, "-m", "modelfunc_runtime", "selftest", str(sample)],
        cwd=build / "app",
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(SELFTEST_MARK)]
    assert lines, proc.stdout + proc.stderr
    result = json.loads(lines[-1].removeprefix(SELFTEST_MARK))
    assert result["ok"], result
    config = yaml.safe_load((ROOT / "modelfunc.yaml").read_text(encoding="utf-8"))
    tolerance = config["samples"]["tolerance"]
    expected = json.loads((ROOT / config["samples"]["expected"]).read_text(encoding="utf-8"))
    assert json.loads(result["body"]) == pytest.approx(expected, rel=tolerance, abs=tolerance)
