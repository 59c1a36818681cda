"""What the action's deploy step hands to its test and swap steps: the SlotDeployment, as a JSON file.

Each step is its own process (its own log group, its own exit status), so the deployment travels through a
file in ``$RUNNER_TEMP`` whose path is a step output. The file is ``SlotDeployment.summary()``: names and
URLs only, never a secret; the later steps sign in again with the same credential.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import OptionError
from .results import SlotDeployment


def save(deployment: SlotDeployment, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(deployment.summary(), indent=2) + "\n", encoding="utf-8")
    return path


def load(path: Path) -> SlotDeployment:
    try:
        return SlotDeployment.from_summary(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise OptionError(f"{path} is not a deployment the deploy step wrote ({type(e).__name__}: {e})",
                          field="deployment", hint="pass the deploy step's `deployment` output") from None
