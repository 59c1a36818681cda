"""The action's swap step (target azure): the tested slot becomes production. Runs only after the test passed.

Inputs (``INPUT_*``): deployment (the deploy step's hand-off file), tenant-id, client-id, deploy-timeout.
Outputs: app-url, swapped (true | false: nothing to swap when production already ran the image).
"""

from __future__ import annotations

from pathlib import Path

from modelfunc import github


@github.script
def main() -> int:
    from modelfunc.azure import clouds, credentials, handoff, swap
    from modelfunc.azure.clients import default_settings

    deployment = handoff.load(Path(github.get_input("deployment", required=True)))
    if not deployment.changed or deployment.slot is None:
        github.set_output("app-url", deployment.app_url)
        github.set_output("swapped", "false")
        return 0
    cloud = clouds.for_options(github.get_input("cloud") or None, github.get_input("arm-endpoint") or None)
    credential = credentials.get_credential(tenant_id=github.get_input("tenant-id") or None,
                                            client_id=github.get_input("client-id") or None, cloud=cloud)
    with github.phases() as progress:
        progress(f"==> swap {deployment.slot} into production")
        deployment = swap(deployment, credential=credential, progress=progress,
                          settings=clouds.with_cloud(default_settings(), cloud),
                          timeout=github.get_float("deploy-timeout", 900.0))
    github.set_output("app-url", deployment.app_url)
    github.set_output("swapped", "true")
    github.add_summary(f"### modelfunc: `{deployment.slot}` swapped into production\n\n"
                       f"{deployment.app_url} runs `{deployment.image}`\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
