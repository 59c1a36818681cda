"""What one action step hands to the next, as a JSON file whose path is a step output.

Each step is its own process (its own log group, its own exit status), so what it leaves for a later step
travels through a file in ``$RUNNER_TEMP``:

* the deployment (deploy → blob-test, swap): ``SlotDeployment.summary()``, names and URLs only, never a secret;
  the later steps sign in again with the same credential;
* the golden table (package → blob-test): ``Golden.to_dict()``, each place's answer so far.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..azure.results import SlotDeployment
from ..errors import OptionError
from ..golden import Golden

T = TypeVar("T")


def _save(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _load(path: Path, parse: Callable[[dict[str, Any]], T], *, what: str, field: str, hint: str) -> T:
    try:
        return parse(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise OptionError(f"{path} is not {what} ({type(e).__name__}: {e})", field=field, hint=hint) from None


def save_deployment(deployment: SlotDeployment, path: Path) -> Path:
    return _save(deployment.summary(), path)


def load_deployment(path: Path) -> SlotDeployment:
    return _load(path, SlotDeployment.from_summary, what="a deployment the deploy step wrote", field="deployment",
                 hint="pass the deploy step's `deployment` output")


def save_golden(golden: Golden, path: Path) -> Path:
    return _save(golden.to_dict(), path)


def load_golden(path: Path) -> Golden:
    return _load(path, Golden.from_dict, what="a golden table an earlier step wrote", field="golden",
                 hint="pass the package step's `golden` output")
