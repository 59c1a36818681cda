"""The action's package step (target azure): render the app, build, self-test and push the image.

Inputs (``INPUT_*``, see action.yml): model-repo, config, target, base-image, pull (default true),
registry-username, registry-password (masked at once), and registry (an ACR; the image is
``<login server>/<app>``), tenant-id, client-id, cloud, arm-endpoint, subscription-id, app-name,
resource-group, location — the push signs in with the identity (ACR token exchange, the token masked at once)
unless a password is given. The tag is the commit (``GITHUB_SHA``).
Outputs: image (``REPOSITORY@sha256:…`` once pushed), digest, golden (the golden table so far, as JSON: run()
directly and through the function, inside the image).
"""

from __future__ import annotations

from modelfunc.action import io, steps


def main(argv: list[str] | None = None) -> int:
    return io.run(steps.package, argv, name="package.py")


if __name__ == "__main__":
    raise SystemExit(main())
