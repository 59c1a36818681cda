"""``modelfunc sample record``: run() on the sample through the app's own self-test (up.direct_answer), then
samples.expected written."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Project
from ..errors import ConfigError
from ..progress import Progress
from .writeconfig import write_atomically


def score_sample(project: Project, *, timeout: float, progress: Progress, output: Progress | None = None) -> Any:
    """run()'s answer to the sample (a golden.Answer): the app rendered into a scratch folder (the repo gets
    nothing), run in its own environment by the runtime's self-test, as `modelfunc up` scores it directly."""
    from .. import appenv
    from .. import up as local_up
    from ..appgen import render

    with tempfile.TemporaryDirectory(prefix="modelfunc-sample-") as tmp:
        # The expected output is what this makes: the app's OpenAPI description reads the input in its place.
        rendering = replace(project, sample_expected=project.sample_input) if not project.sample_expected.is_file() \
            else project
        result = render(rendering, Path(tmp) / "build", progress=progress)
        _, env = appenv.for_app(result.app_dir, python_version=project.config.python_version, progress=progress)
        progress("==> score the sample with run() called directly")
        return local_up.direct_answer(project, result.app_dir, timeout=timeout, output=output or progress,
                                   python=env.python)


def shown_answer(body: bytes) -> str:
    """The answer as it will be written: indented JSON when it is JSON, else its text (or its size)."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, ValueError, RecursionError):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return f"({len(body)} bytes of binary data)"


def expected_bytes(project: Project, body: bytes) -> bytes:
    """What samples.expected gets: a .json file the answer as indented JSON (compared as JSON, within the
    tolerance), any other file the answer's bytes as they are (compared byte for byte)."""
    if project.sample_expected.suffix.lower() == ".json":
        try:
            return (json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ConfigError(f"is a .json file, and run()'s answer to the sample is not JSON: {body[:80]!r}",
                              file=project.sample_expected,
                              hint="name the expected output with another extension in modelfunc.yaml (samples."
                                   "expected: samples/expected.txt): it is then compared byte for byte") from None
    return body


def write_expected(project: Project, data: bytes) -> None:
    write_atomically(project.sample_expected, data, replace_existing=True)
