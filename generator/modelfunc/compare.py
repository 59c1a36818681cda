"""The comparison of an app's output with the expected one: structural, numbers within a tolerance.

Pure (no I/O): used by the round trip (roundtrip/), the image's self-test (image.py), the golden table
(golden.py) and the benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Mismatch:
    path: str
    expected: Any
    actual: Any
    reason: str


def compare(expected: Any, actual: Any, tolerance: float, path: str = "") -> list[Mismatch]:
    """Structural comparison; numbers match within ``tolerance`` (absolute or relative)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return [] if expected is actual else [Mismatch(path, expected, actual, "different value")]
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        if math.isclose(expected, actual, rel_tol=tolerance, abs_tol=tolerance):
            return []
        return [Mismatch(path, expected, actual, f"differs by {abs(expected - actual):.6g} > {tolerance:g}")]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[Mismatch] = []
        for k in expected:
            if k not in actual:
                out.append(Mismatch(f"{path}.{k}", expected[k], None, "missing in output"))
            else:
                out += compare(expected[k], actual[k], tolerance, f"{path}.{k}")
        out += [Mismatch(f"{path}.{k}", None, actual[k], "not expected") for k in actual if k not in expected]
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [Mismatch(path, expected, actual, f"length {len(actual)}, expected {len(expected)}")]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += compare(e, a, tolerance, f"{path}[{i}]")
        return out
    if type(expected) is not type(actual):
        return [Mismatch(path, expected, actual, f"type {type(actual).__name__}, expected {type(expected).__name__}")]
    return [] if expected == actual else [Mismatch(path, expected, actual, "different value")]
