"""The secrets guard's file scan (tests/support/secrets_guard.py ``scan_tree``): what it reads again and what it
leaves out, so the session's last scan stays short without missing a file that changed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import secrets_guard
from support.secrets_guard import scan_tree


@pytest.fixture
def outside() -> Iterator[Path]:
    """A dir outside pytest's temp dirs: the guard itself scans those, and would fail these tests' planted leaks."""
    with tempfile.TemporaryDirectory(prefix="modelfunc-scan-") as tmp:
        yield Path(tmp)


def test_a_file_found_clean_is_read_again_once_it_changes_or_a_secret_is_added(outside: Path) -> None:
    first = secrets_guard.secret("scan-test-secret-one-4411")
    log = outside / "host.log"
    log.write_text("nothing to see\n")
    leaks: list[str] = []
    scan_tree(outside, leaks)
    assert leaks == []
    log.write_text(f"oops {first}\n")  # changed (size and mtime): read again
    scan_tree(outside, leaks)
    assert leaks == [f"{log}: 1 secret value(s) (first characters 'sca'…)"]

    later = outside / "later.log"
    second_value = "scan-test-secret-two-5522"
    later.write_text(f"written before it was known to be a secret: {second_value}\n")
    leaks.clear()
    scan_tree(outside, leaks)
    assert leaks == [f"{log}: 1 secret value(s) (first characters 'sca'…)"]  # later.log is clean so far
    stat = later.stat()
    secrets_guard.secret(second_value)  # unchanged file, one more secret: read again
    os.utime(later, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    leaks.clear()
    scan_tree(outside, leaks)
    assert f"{later}: 1 secret value(s) (first characters 'sca'…)" in leaks


def test_installed_third_party_packages_are_left_out_and_everything_else_is_read(outside: Path) -> None:
    value = secrets_guard.secret("scan-test-secret-three-6633")
    for rel in ("venv/lib/python3.11/site-packages/pkg/mod.py", "action/node_modules/x/index.js",
                "app/__pycache__/notes.txt", "app/site-packages-report.txt", "app/deep/er/out.json"):
        (outside / rel).parent.mkdir(parents=True, exist_ok=True)
        (outside / rel).write_text(value)
    leaks: list[str] = []
    scan_tree(outside, leaks)
    assert sorted(leak.split(":")[0] for leak in leaks) == [str(outside / "app/deep/er/out.json"),
                                                          str(outside / "app/site-packages-report.txt")]
