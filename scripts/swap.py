"""The action's swap step (target azure): the tested slot becomes production. Runs only after the test passed.

Inputs (``INPUT_*``): deployment (the deploy step's hand-off file), tenant-id, client-id, deploy-timeout.
Outputs: app-url, swapped (true | false: nothing to swap when production already ran the image).
"""

from __future__ import annotations

from modelfunc.action import io, steps


def main(argv: list[str] | None = None) -> int:
    return io.run(steps.swap, argv, name="swap.py")


if __name__ == "__main__":
    raise SystemExit(main())
