"""pip as modelfunc runs it: its cache, and the options that select the Functions image's wheels."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..progress import Progress, quiet  # noqa: F401 - the package's modules import them from here


def cache_root() -> Path:
    """Where modelfunc keeps its pip cache, locks, environments and resolved dependency layers."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelfunc"


def default_pip_cache() -> Path:
    return cache_root() / "pip"


def pip_platform_args(python_version: str) -> list[str]:
    """pip options selecting wheels for the Functions image: CPython on Linux x86-64 (Debian 12, glibc 2.36)."""
    nodot = python_version.replace(".", "")
    platforms = ["manylinux2014_x86_64", *(f"manylinux_2_{n}_x86_64" for n in range(17, 37))]
    return ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
            "--abi", f"cp{nodot}", *(arg for p in platforms for arg in ("--platform", p))]


def pip_command(verb: str, *args: str, cache_dir: Path | None) -> list[str]:
    """``python -m pip <verb> <args>`` with modelfunc's pip cache (default: :func:`default_pip_cache`)."""
    no_bar = ["--progress-bar", "off"] if verb in ("install", "download") else []
    return [sys.executable, "-m", "pip", verb, *args, "--disable-pip-version-check", "--no-input", *no_bar,
            "--cache-dir", str(cache_dir or default_pip_cache())]
