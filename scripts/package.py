"""`modelfunc package` as an action step: render the app, build, self-test and push the image.

Inputs (``INPUT_*``): model-repo, config, image (``[REGISTRY/]REPOSITORY``), tag, base-image, build
(default true), pull (default true), registry-username, registry-password (masked at once). With target
azure: registry (an ACR; the image defaults to ``<login server>/<app>``), tenant-id and client-id — the push
signs in with the identity (ACR token exchange, the token masked at once) unless a password is given.
Outputs: image (``REPOSITORY@sha256:…`` once pushed, else ``REPOSITORY:TAG``; empty without a build), digest,
golden (the golden table so far, as JSON: run() directly and through the function, inside the image).
"""

from __future__ import annotations

import sys
from pathlib import Path

from modelfunc import github, golden


@github.script
def main() -> int:
    password = github.get_input("registry-password")
    github.mask(password)  # before anything else can print it
    username = github.get_input("registry-username")

    from modelfunc import image
    from modelfunc.config import load_project

    progress = github.echo

    project = load_project(Path(github.get_input("model-repo", ".")),
                           config_file=github.get_input("config") or None)
    repository = github.get_input("image") or None
    registry = github.get_input("registry")
    if github.get_input("target") == "azure":  # push to the ACR with the signed-in identity: no password
        from modelfunc.azure import DeployOptions, clouds, credentials
        from modelfunc.azure import registry as acr
        from modelfunc.azure.clients import default_settings
        from modelfunc.azure.options import resolve_names

        cloud = clouds.for_options(github.get_input("cloud") or None, github.get_input("arm-endpoint") or None)
        server = acr.login_server(registry, clouds.suffixes_for(cloud).acr_suffix)
        repository = repository or f"{server}/{project.name.lower()}"
        credential = credentials.get_credential(
            tenant_id=github.get_input("tenant-id") or None, client_id=github.get_input("client-id") or None,
            cloud=cloud)
        # A new user's first push: the registry is created (Basic, no admin user) when the subscription lacks it.
        names = resolve_names(project, DeployOptions(
            subscription_id=github.get_input("subscription-id"), app_name=github.get_input("app-name") or None,
            resource_group=github.get_input("resource-group") or None, location=github.get_input("location") or None))
        acr.ensure_registry(server, credential=credential, subscription_id=names.subscription_id,
                            resource_group=names.resource_group, location=names.location, tags=names.tags,
                            acr_suffix=clouds.suffixes_for(cloud).acr_suffix,
                            settings=clouds.with_cloud(default_settings(), cloud), progress=progress)
        if not password:
            username, password = acr.docker_credentials(
                server, credential, scope=clouds.suffixes_for(cloud).arm_scope,
                fallback_scope=acr.ACR_AUDIENCE_SCOPE if cloud is None else None)  # ACR's audience: public cloud
            github.mask(password)
    with github.group(f"package {project.name}"):
        try:
            result = image.package(
                project, None, build_image=github.get_bool("build", True),
                base_image=github.get_input("base-image") or None,
                repository=repository, tag=github.get_input("tag") or None,
                username=username or None, password=password or None,
                pull=github.get_bool("pull", True), progress=progress)
        except image.SelfTestFailed as e:
            packaged = getattr(e, "packaged", None)
            if packaged is not None:
                github.add_summary(github.summary_for_image(packaged.summary()))
                github.publish_golden(_golden(project, packaged), check=False)
            raise
    if result.test is not None:  # the test step adds the slot's answer and publishes the table
        github.set_output("golden", str(golden.save(_golden(project, result), github.default_golden_path())))
    summary = result.summary()
    github.set_output("image", result.reference or "")
    github.set_output("digest", summary.get("digest", ""))
    github.add_summary(github.summary_for_image(summary))
    if result.reference:
        github.echo(result.reference, file=sys.stdout)
    return 0


def _golden(project, packaged):  # noqa: ANN001, ANN202
    """The golden table so far: run() directly and through the function, both inside the image (the runner has
    not the app's dependencies); target azure runs no local host."""
    table = golden.for_project(project)
    table.set(golden.LOCAL_HOST, golden.Answer(skipped="the app does not run on the runner (target azure)"))
    return golden.with_image(table, packaged, direct_too=True)


if __name__ == "__main__":
    raise SystemExit(main())
