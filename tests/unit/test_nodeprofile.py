"""benchmarks/nodeprofile.py reads the profile Node itself writes (``node --cpu-prof``), not one made up here: a
script that spends its time in one function must come out with that function on top, and the stand-in for
azurite-blob must run the real script under the profiler."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import nodeprofile  # noqa: E402

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (make setup installs it)")

BUSY = """
function spin(ms) { const end = Date.now() + ms; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1); return x; }
function idle() {}
spin(400); idle();
"""


def test_a_profile_written_by_node_is_summed_per_function(tmp_path: Path) -> None:
    script = tmp_path / "busy.js"
    script.write_text(BUSY)
    subprocess.run([NODE, "--cpu-prof", f"--cpu-prof-dir={tmp_path}", str(script)], check=True, timeout=60)
    (profile,) = tmp_path.glob("*.cpuprofile")
    text, shares = nodeprofile.summarize(profile)
    spin = nodeprofile.share(shares, "spin")
    assert spin >= 80.0, text  # the busy samples are spin()'s
    assert nodeprofile.share(shares, "idle") < 5.0
    assert nodeprofile.share(shares, "no_such_function") == 0.0
    assert "## self" in text and "## inclusive" in text and "busy.js:2" in text


def test_the_stand_in_runs_azurite_under_the_profiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "azurite-blob.js"  # what find_executable returns: the script the real bin links to
    fake.write_text("function serve() { const end = Date.now() + 150; let x = 0; while (Date.now() < end) x++; }\n"
                    "serve(); console.log(process.argv.slice(2).join(' '));\n")
    monkeypatch.setenv("MODELFUNC_AZURITE", str(fake))
    with nodeprofile.profiling_azurite(tmp_path / "prof") as directory:
        wrapper = os.environ["MODELFUNC_AZURITE"]
        assert wrapper != str(fake)
        out = subprocess.run([wrapper, "--blobPort", "1"], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "--blobPort 1"  # the arguments reach the script
    assert os.environ["MODELFUNC_AZURITE"] == str(fake)  # the lookup is as it was after the block
    (profile,) = directory.glob("*.cpuprofile")
    _, shares = nodeprofile.summarize(profile)
    assert nodeprofile.share(shares, "serve") >= 50.0
