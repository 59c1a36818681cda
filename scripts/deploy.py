"""The action's deploy step (target azure): provision idempotently and run the image on the staging slot.

Inputs (``INPUT_*``): model-repo, config, image (the package step's ``REGISTRY/REPOSITORY@sha256:…``),
subscription-id, tenant-id, client-id (OIDC: no secret), app-name, resource-group, location, registry,
storage-prefix, slot-name, hosting-plan (premium-container | flex), sku, deploy-timeout, blob-test-timeout.
Outputs: app-url, slot-url, state, changed (true when the slot now runs a new image), deployment (the path
of the JSON hand-off the blob-test and swap steps read).
"""

from __future__ import annotations

import os
from pathlib import Path

from modelfunc import github


@github.script
def main() -> int:
    from modelfunc.azure import clouds, credentials, deploy_to_slot, handoff
    from modelfunc.azure.clients import default_settings
    from modelfunc.azure.flex import deploy_flex
    from modelfunc.azure.options import DeployOptions
    from modelfunc.config import load_project

    project = load_project(Path(github.get_input("model-repo", ".")),
                           config_file=github.get_input("config") or None)
    options = DeployOptions(
        subscription_id=github.get_input("subscription-id") or os.environ.get("AZURE_SUBSCRIPTION_ID", ""),
        app_name=github.get_input("app-name") or None, resource_group=github.get_input("resource-group") or None,
        location=github.get_input("location") or None, registry=github.get_input("registry") or None,
        slot_name=github.get_input("slot-name", "staging"),
        hosting_plan=github.get_input("hosting-plan", "premium-container"),  # type: ignore[arg-type]
        sku=github.get_input("sku", "EP1"), storage_prefix=github.get_input("storage-prefix") or None,
        timeout=github.get_float("deploy-timeout", 900.0),
        test_timeout=github.get_float("blob-test-timeout", 0.0) or None)  # None: by the trigger's latency
    cloud = clouds.for_options(github.get_input("cloud") or None, github.get_input("arm-endpoint") or None)
    settings = clouds.with_cloud(default_settings(), cloud)
    credential = credentials.get_credential(tenant_id=github.get_input("tenant-id") or None,
                                            client_id=github.get_input("client-id") or None, cloud=cloud)
    with github.phases() as progress:
        if options.hosting_plan == "flex":  # no slots, no image: the rendered app is zip-deployed
            deployment = deploy_flex(project, options, credential=credential, progress=progress,
                                     settings=settings)
        else:
            deployment = deploy_to_slot(project, github.get_input("image", required=True), options,
                                        credential=credential, progress=progress, settings=settings)
    path = handoff.save(deployment, github.default_report_path().with_name("modelfunc-deployment.json"))
    github.set_output("app-url", deployment.app_url)
    github.set_output("slot-url", deployment.slot_url)
    github.set_output("state", deployment.state.value)
    github.set_output("changed", "true" if deployment.changed else "false")
    github.set_output("deployment", str(path))
    github.add_summary(github.summary_for_deployment(deployment.summary(), deployment.plan.render()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
