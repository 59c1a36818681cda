"""The action's test step (target azure): round-trip the sample through the slot the deploy step ran the image on.

Inputs (``INPUT_*``, see action.yml): model-repo, config, deployment (the deploy step's hand-off), golden (the
package step's golden table: the slot's answer is added, the table published, and any difference fails the
step), tenant-id, client-id, cloud, arm-endpoint (OIDC), blob-test-timeout. Without a deployment the sample goes
through the storage account of connection-string (masked at once).
Outputs: test-result (pass|fail), report-path, golden.
"""

from __future__ import annotations

from modelfunc.action import io, steps


def main(argv: list[str] | None = None) -> int:
    return io.run(steps.blob_test, argv, name="blob_test.py")


if __name__ == "__main__":
    raise SystemExit(main())
