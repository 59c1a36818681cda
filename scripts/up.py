"""The action's main step (target local): `modelfunc up` — package, run on the runner, round-trip the sample.

Inputs (``INPUT_*``, see action.yml): model-repo, config, target, connection-string (masked at once),
run-blob-test, blob-test-timeout, build-image (auto|true|false; empty: the
MODELFUNC_UP_IMAGE variable, else auto), base-image.
Outputs: image, app-url, test-result (pass|fail|skipped), report-path, golden (the golden table as JSON).
"""

from __future__ import annotations

from modelfunc.action import io, steps


def main(argv: list[str] | None = None) -> int:
    return io.run(steps.up, argv, name="up.py")


if __name__ == "__main__":
    raise SystemExit(main())
