"""`modelfunc package` on broken model repos: a clear error, exit code 2, and nothing left behind.

Each case copies an example repo, breaks one thing, and runs the real CLI in a child process. The
error must start with "error:", name the file (with the line where there is one), the field, the bad
value and what is allowed; there must be no traceback; and the run must not write anything: no
--out directory, no staging directory beside it, every file under the test's tmp dir byte-for-byte
as it was (so score.py was checked without importing it: no __pycache__ appears either).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cases.bad_inputs import (
    CASES,
    Bad,
)
from support.core import run_modelfunc
from support.repo_steps import HTTP, Step, delete, replace

# ------------------------------------------------------------------ checks


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root: file bytes, or None for a directory."""
    return {p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


def staging_leftovers(out: Path) -> list[str]:
    if not out.parent.is_dir():
        return []
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}"))


def assert_clean_failure(result, expect: list[str], code: int = 2) -> None:  # noqa: ANN001
    err = result.stderr
    assert "Traceback" not in err, err
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{err}"
    assert err.startswith("error: "), err
    for text in expect:
        assert text in err, f"{text!r} not in stderr:\n{err}"
    assert "Packaged" not in result.stdout, result.stdout


@pytest.mark.parametrize("bad", CASES)
def test_package_rejects_bad_input(bad: Bad, example, tmp_path: Path) -> None:  # noqa: ANN001
    repo = example(bad.example)
    bad.breaks(repo)
    out = bad.out(tmp_path, repo) if bad.out else tmp_path / "out"
    out_existed = out.exists()
    before = snapshot(tmp_path)

    result = run_modelfunc("package", str(repo), "--out", str(out), "--no-pull", timeout=60)

    expect = [e.replace("<repo>", str(repo)).replace("<tmp>", str(tmp_path)) for e in bad.expect]
    assert_clean_failure(result, expect, bad.code)
    if not out_existed:
        assert not out.exists(), f"{out} was created: {sorted(p.name for p in out.iterdir())}"
    assert staging_leftovers(out) == []
    assert snapshot(tmp_path) == before, "the failed run changed files under the tmp dir"


def test_cases_are_many_and_distinct() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 22
    assert len(set(ids)) == len(ids)


# ------------------------------------------------------------------ a previous good output survives


@pytest.mark.parametrize(
    "breaks, expect",
    [
        pytest.param(replace("modelfunc.yaml", "auth_level: function", "auth_level: public"),
                     "trigger.auth_level: 'public' is not allowed", id="config-error"),
        pytest.param(replace("score.py", "def run(data):", "def run(*args):"),
                     "score.py:21: run() cannot accept", id="entry-script-error"),
        pytest.param(replace("environment.yml", "python=3.11", "python=3.8"),
                     "dependencies[0]: pins python 3.8", id="environment-error"),
        pytest.param(delete("model"), "model_dir: 'model' does not exist", id="model-dir-missing"),
    ],
)
def test_failed_package_keeps_previous_output(breaks: Step, expect: str, example, tmp_path: Path) -> None:  # noqa: ANN001
    repo = example(HTTP)
    out = tmp_path / "build-out"
    first = run_modelfunc("package", str(repo), "--out", str(out), "--no-build", timeout=120)
    assert first.returncode == 0, first.stderr
    assert (out / "app" / "function_app.py").is_file()
    before = snapshot(out)
    inode = out.stat().st_ino
    assert len([k for k, v in before.items() if v is not None]) >= 8, before.keys()

    breaks(repo)
    result = run_modelfunc("package", str(repo), "--out", str(out), "--no-pull", timeout=60)

    assert_clean_failure(result, [expect])
    assert out.stat().st_ino == inode, "the previous output directory was replaced"
    assert snapshot(out) == before, "the previous output changed"
    assert staging_leftovers(out) == []
