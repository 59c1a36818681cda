"""``samples:`` in modelfunc.yaml — the sample input and the answer expected for it — and reading them."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from .errors import ConfigError
from .sections import Strict

if TYPE_CHECKING:
    from .config import Project

# samples.expected is compared value by value (recursively): deeper is no model output, and would overflow.
MAX_EXPECTED_DEPTH = 100


class Samples(Strict):
    input: str = "samples/input.json"
    expected: str = "samples/expected.json"
    tolerance: float = Field(default=1e-6, ge=0)

    @field_validator("tolerance", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        try:  # as pydantic will read it: a number, or text such as "inf"
            number = float(v) if isinstance(v, (int, float, str)) and not isinstance(v, bool) else 0.0
        except (ValueError, OverflowError):
            return v  # not a number: pydantic says so
        if not math.isfinite(number):
            raise ValueError(f"{getattr(v, 'source', v)!r} is not a tolerance: with it every difference would "
                             "pass (or, for nan, none would); use a finite number >= 0, e.g. 1.0e-6")
        return v


def _json_depth(value: Any) -> int:
    depth, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            depth = max(depth, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return depth


def load_expected(project: Project) -> Any:
    """The expected output: parsed JSON when the file is JSON by name, raw bytes otherwise."""
    path = project.sample_expected
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot be read: {e.strerror}", file=path) from None
    if path.suffix.lower() != ".json":
        return raw
    too_deep = ConfigError(
        f"is nested more than {MAX_EXPECTED_DEPTH} levels deep, more than any model output (and more than the "
        "comparison follows)", file=path,
        hint="samples.expected must hold the JSON the model returns for samples.input")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        line = getattr(e, "lineno", None)
        raise ConfigError(
            f"is not valid JSON: {getattr(e, 'msg', e)}", file=path, line=line,
            hint="samples.expected must hold the JSON the model returns for samples.input",
        ) from None
    if _json_depth(value) > MAX_EXPECTED_DEPTH:
        raise too_deep
    return value


def sample_text(project: Project) -> str:
    """The sample input as text: what the local host's admin API takes for a Service Bus message (as the Functions
    host's does: ``{"input": "<string>"}``)."""
    path = project.sample_input
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot be read: {e.strerror}", file=path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"is not UTF-8 text ({e.reason} at byte {e.start}): a Service Bus message is sent to the local host as "
            "text, through its admin API (as to the Functions host's)", file=path,
            hint="save the sample as UTF-8 text (JSON, CSV ...); a binary message can be tested in Azure, where "
                 "`modelfunc deploy` sends the sample's bytes to the queue",
        ) from None
