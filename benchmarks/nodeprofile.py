"""Azurite's own CPU profile: Node's ``--cpu-prof`` around the ``azurite-blob`` modelfunc would start, summed per
function (self and inclusive), so a benchmark can say where the emulator's time goes, not only how much it used.

``--cpu-prof`` is not allowed in ``NODE_OPTIONS``, so :func:`profiling_azurite` writes a stand-in for
``azurite-blob`` that runs the same script under ``node --cpu-prof`` and points ``MODELFUNC_AZURITE`` (the
lookup's first choice, ``modelfunc.azurite.find_executable``) at it. Node writes the profile when the process
exits, which Azurite does on the SIGTERM ``Azurite.stop`` sends.
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import tally_stacks

SKIP = {"(root)", "(program)", "runMicrotasks", "processTicksAndRejections"}


@contextmanager
def profiling_azurite(directory: Path) -> Iterator[Path]:
    """Azurite started within the block runs under ``node --cpu-prof``, its profile written into ``directory``."""
    from modelfunc.azurite import find_executable

    directory = directory.resolve()  # the stand-in runs in Azurite's own working directory
    directory.mkdir(parents=True, exist_ok=True)
    script = os.path.realpath(find_executable())
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: Azurite's profile needs it")
    wrapper = directory / "azurite-blob-profiled"
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(node)} --cpu-prof --cpu-prof-dir={shlex.quote(str(directory))} "
                       f"{shlex.quote(script)} \"$@\"\n")
    wrapper.chmod(0o755)
    before = os.environ.get("MODELFUNC_AZURITE")
    os.environ["MODELFUNC_AZURITE"] = str(wrapper)
    try:
        yield directory
    finally:
        if before is None:
            os.environ.pop("MODELFUNC_AZURITE", None)
        else:
            os.environ["MODELFUNC_AZURITE"] = before


def _frame(node: dict[str, Any]) -> str:
    frame = node["callFrame"]
    url = frame["url"]
    url = url.split("/node_modules/")[-1].replace("azurite/dist/src/", "azurite/")
    name = frame["functionName"] or "(anonymous)"
    return f"{name} {url}:{frame['lineNumber'] + 1}" if url else name


def summarize(path: Path, top: int = 25) -> tuple[str, dict[str, float]]:
    """A ``.cpuprofile`` as text (self and inclusive shares of the busy samples, idle left out) and the inclusive
    shares by function name (``{"Collection.findOne lokijs/src/lokijs.js:7026": 46.1, ...}``)."""
    profile = json.loads(path.read_text())
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {child: n["id"] for n in profile["nodes"] for child in n.get("children", ())}
    stacks: list[tuple[list[str], int]] = []
    idle = 0
    for node_id, count in collections.Counter(profile["samples"]).items():
        if _frame(nodes[node_id]) == "(idle)":
            idle += count
            continue
        frames: list[str] = []
        at: int | None = node_id
        while at is not None:
            frames.append(_frame(nodes[at]))
            at = parent.get(at)
        stacks.append((frames[::-1], count))
    own, inclusive = tally_stacks(stacks)
    busy = sum(own.values()) or 1
    seconds = (profile["endTime"] - profile["startTime"]) / 1e6
    lines = [f"{busy + idle} samples over {seconds:.1f} s: busy {100 * busy / (busy + idle):.1f} %, idle "
             f"{100 * idle / (busy + idle):.1f} %; the shares below are of the busy samples", "", "## self"]
    lines += [f"{100 * c / busy:6.1f} %  {k}" for k, c in sorted(own.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    lines += ["", "## inclusive (the root and the event loop's own frames left out)"]
    shares = {k: round(100 * c / busy, 1) for k, c in inclusive.items() if k.split(" ")[0] not in SKIP}
    lines += [f"{v:6.1f} %  {k}" for k, v in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))[:top * 2]]
    return "\n".join(lines) + "\n", shares


def share(shares: dict[str, float], function: str) -> float:
    """The inclusive share of the first frame whose name starts with ``function`` (0.0 when none does)."""
    return max((v for k, v in shares.items() if k.startswith(function + " ")), default=0.0)
