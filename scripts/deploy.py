"""The action's deploy step (target azure): provision idempotently and run the image on the staging slot.

Inputs (``INPUT_*``): model-repo, config, image (the package step's ``REGISTRY/REPOSITORY@sha256:…``),
subscription-id, tenant-id, client-id (OIDC: no secret), app-name, resource-group, location, registry,
storage-prefix, slot-name, hosting-plan (premium-container | flex), sku, deploy-timeout, blob-test-timeout.
Outputs: app-url, slot-url, state, changed (true when the slot now runs a new image), deployment (the path
of the JSON hand-off the blob-test and swap steps read).
"""

from __future__ import annotations

from modelfunc.action import io, steps


def main(argv: list[str] | None = None) -> int:
    return io.run(steps.deploy, argv, name="deploy.py")


if __name__ == "__main__":
    raise SystemExit(main())
