"""One function per step of ``action.yml``: read the inputs, call the core, write outputs and the summary.

Each builds its options through the same named-value builders the CLI uses (:mod:`modelfunc.useroptions`) and
signs in through :func:`.signin.credential`. Secrets are masked before anything else can print them. A step
returns 0 or raises a ModelfuncError, which :func:`.io.run` turns into an annotation, a summary and an exit code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .. import golden
from ..errors import ConfigError
from ..useroptions import DEFAULT_DEPLOY_TIMEOUT
from . import io
from .summaries import (
    summary_for_deployment,
    summary_for_golden,
    summary_for_image,
    summary_for_skipped_test,
    summary_for_swap,
    summary_for_test,
)

# ------------------------------------------------------------------------------------- shared pieces


def _project() -> Any:
    from ..config import load_project

    return load_project(Path(io.get_input("model-repo", ".")), config_file=io.get_optional("config"))


def _cloud() -> tuple[Any, Any]:
    """(settings, cloud) from the cloud and arm-endpoint inputs."""
    from ..useroptions import azure_settings

    return azure_settings(io.get_input("cloud"), io.get_input("arm-endpoint"))


def _credential(cloud: Any) -> Any:
    """The credential for the tenant-id and client-id inputs (the job's OIDC token in a workflow)."""
    from .signin import credential

    return credential(io.get_optional("tenant-id"), io.get_optional("client-id"), cloud)


def _azure() -> tuple[Any, Any, Any]:
    """(settings, cloud, credential): where and as whom the step signs in."""
    settings, cloud = _cloud()
    return settings, cloud, _credential(cloud)


def publish_test(report: Any, report_path: Path) -> None:
    """Print the report, write it as JSON, set test-result and report-path, add the summary table;
    raise SampleTestFailed when the sample did not round-trip."""
    from ..errors import SampleTestFailed
    from ..roundtrip import write_report

    io.echo(report.render(), file=sys.stdout)
    write_report(report, report_path)
    io.set_output("test-result", "pass" if report.passed else "fail")
    io.set_output("report-path", str(report_path))
    io.add_summary(summary_for_test(report))
    if not report.passed:
        raise SampleTestFailed(f"the sample did not round-trip: {report.failure()}")


def publish_golden(table: golden.Golden) -> None:
    """Print the golden table, write it as JSON (output ``golden``), add it to the summary. The caller checks it
    (``table.check()``) once the test report is out too."""
    from .handoff import save_golden

    io.echo(table.render_text(), file=sys.stdout)
    io.set_output("golden", str(save_golden(table, io.default_golden_path())))
    io.add_summary(summary_for_golden(table))


NO_LOCAL_HOST = "the app does not run on the runner (target azure)"

# ------------------------------------------------------------------------------------------- up (local)

BUILD_IMAGE_MODES = {"auto": "auto", "true": "on", "on": "on", "false": "off", "off": "off"}


def up() -> int:
    """`modelfunc up` (target local): package, run on the runner, round-trip the sample, the golden table."""
    connection_string = io.get_input("connection-string")
    io.mask_connection_string(connection_string)  # before anything else can print it

    from .. import up as local_up
    from ..config import load_project

    repo = Path(io.get_input("model-repo", "."))
    target = io.get_input("target", "local")
    if target != "local":  # target azure runs the package, deploy, blob-test and swap steps instead
        raise ConfigError(f"{target!r} is not a target up.py runs: it runs target local", field="target",
                          hint="target: local here; target: azure runs scripts/package.py, deploy.py, "
                               "blob_test.py and swap.py (see action.yml)")
    run_test = io.get_bool("run-blob-test", True)
    report_path = io.default_report_path()
    project = load_project(repo, config_file=io.get_optional("config"))
    image_mode = (io.get_input("build-image") or os.environ.get(local_up.UP_IMAGE_ENV) or "auto").lower()
    if image_mode not in BUILD_IMAGE_MODES:
        raise ConfigError(f"{image_mode!r} is not a build-image value", field="build-image",
                          hint="auto (when a Docker engine answers), true or false")
    with io.phases() as progress:  # each step of the pipeline is a log group of its own
        result = local_up.up(project, timeout=io.get_float("blob-test-timeout", 60.0), run_test=run_test,
                          connection_string=connection_string or None, progress=progress, output=io.echo,
                          image=BUILD_IMAGE_MODES[image_mode], base_image=io.get_optional("base-image"))
    report = result.report
    io.set_output("image", "")  # target local runs the rendered app; no image is built
    io.set_output("app-url", "")  # the local host is stopped when the step ends
    if report is None:
        io.set_output("test-result", "skipped")
        io.set_output("report-path", "")
        io.add_summary(summary_for_skipped_test(project.name))
        return 0
    # The table first: it shows where the answer went wrong, also when the round trip failed.
    publish_golden(result.golden)
    publish_test(report, report_path)
    result.golden.check()
    io.echo(result.check_environment())
    return 0


# ---------------------------------------------------------------------------------- package (azure)


def _image_golden(project: Any, packaged: Any) -> golden.Golden:
    """The golden table so far: run() directly and through the function, both inside the image (the runner has
    not the app's dependencies); target azure runs no local host."""
    table = golden.for_project(project)
    table.set(golden.LOCAL_HOST, golden.Answer(skipped=NO_LOCAL_HOST))
    return golden.with_image(table, packaged, direct_too=True)


def _acr_sign_in(project: Any, registry: str, password: str) -> tuple[str, str | None, str | None]:
    """target azure: (repository, username, password) for a push to the ACR with the signed-in identity.

    A new user's first push: the registry is created (Basic, no admin user) when the subscription lacks it. With
    no registry-password the identity's ACR token is the password (masked at once)."""
    from ..azure import clouds
    from ..azure import registry as acr
    from ..azure.options import resolve_names
    from ..useroptions import deploy_options

    settings, cloud = _cloud()
    suffixes = clouds.suffixes_for(cloud)
    server = acr.login_server(registry, suffixes.acr_suffix)
    credential = _credential(cloud)
    names = resolve_names(project, deploy_options(
        io.get_input("subscription-id"), app_name=io.get_optional("app-name"),
        resource_group=io.get_optional("resource-group"), location=io.get_optional("location")))
    acr.ensure_registry(server, credential=credential, subscription_id=names.subscription_id,
                        resource_group=names.resource_group, location=names.location, tags=names.tags,
                        acr_suffix=suffixes.acr_suffix, settings=settings, progress=io.echo)
    username = io.get_optional("registry-username")
    if password:
        return f"{server}/{project.name.lower()}", username, password
    username, password = acr.docker_credentials(
        server, credential, scope=suffixes.arm_scope,
        fallback_scope=acr.ACR_AUDIENCE_SCOPE if cloud is None else None)  # ACR's audience: the public cloud
    io.mask(password)
    return f"{server}/{project.name.lower()}", username, password


def package(*, build_image: bool = True) -> int:
    """`modelfunc package` (target azure): render, build, self-test and push the image; hand on its golden table.

    ``build_image`` False (tests, without a Docker engine) writes the app and the build context only."""
    password = io.get_input("registry-password")
    io.mask(password)  # before anything else can print it

    from .. import image
    from .handoff import save_golden

    project = _project()
    repository, username = None, io.get_optional("registry-username")
    if io.get_input("target") == "azure":  # push to the ACR with the signed-in identity: no password
        repository, username, password = _acr_sign_in(project, io.get_input("registry"), password)
    with io.group(f"package {project.name}"):
        try:
            result = image.package(project, None, build_image=build_image, base_image=io.get_optional("base-image"),
                                   repository=repository, tag=io.commit(), username=username,
                                   password=password or None, pull=io.get_bool("pull", True), progress=io.echo)
        except image.SelfTestFailed as e:
            packaged = getattr(e, "packaged", None)
            if packaged is not None:
                io.add_summary(summary_for_image(packaged.summary()))
                publish_golden(_image_golden(project, packaged))
            raise
    if result.test is not None:  # the test step adds the slot's answer and publishes the table
        io.set_output("golden", str(save_golden(_image_golden(project, result), io.default_golden_path())))
    summary = result.summary()
    io.set_output("image", result.reference or "")
    io.set_output("digest", summary.get("digest", ""))
    io.add_summary(summary_for_image(summary))
    if result.reference:
        io.echo(result.reference, file=sys.stdout)
    return 0


# ----------------------------------------------------------------------------------- deploy (azure)


def deploy() -> int:
    """Provision idempotently and run the image on the staging slot (flex: zip-deploy the app); hand on the
    deployment."""
    from ..azure import deploy_to_slot
    from ..azure.flex import deploy_flex
    from ..useroptions import deploy_options
    from .handoff import save_deployment

    project = _project()
    options = deploy_options(
        io.get_input("subscription-id") or os.environ.get("AZURE_SUBSCRIPTION_ID", ""),
        app_name=io.get_optional("app-name"), resource_group=io.get_optional("resource-group"),
        location=io.get_optional("location"), registry=io.get_optional("registry"),
        slot_name=io.get_optional("slot-name"), hosting_plan=io.get_optional("hosting-plan"),
        sku=io.get_optional("sku"), storage_prefix=io.get_optional("storage-prefix"),
        timeout=io.get_float("deploy-timeout", DEFAULT_DEPLOY_TIMEOUT),
        test_timeout=io.get_float("blob-test-timeout", 0.0) or None)  # None: by the trigger's latency
    settings, _, credential = _azure()
    with io.phases() as progress:
        if options.hosting_plan == "flex":  # no slots, no image: the rendered app is zip-deployed
            deployment = deploy_flex(project, options, credential=credential, progress=progress, settings=settings)
        else:
            deployment = deploy_to_slot(project, io.get_input("image", required=True), options,
                                        credential=credential, progress=progress, settings=settings)
    path = save_deployment(deployment, io.temp_path("modelfunc-deployment.json"))
    io.set_output("app-url", deployment.app_url)
    io.set_output("slot-url", deployment.slot_url)
    io.set_output("state", deployment.state.value)
    io.set_output("changed", "true" if deployment.changed else "false")
    io.set_output("deployment", str(path))
    io.add_summary(summary_for_deployment(deployment.summary(), deployment.plan.render()))
    return 0


# --------------------------------------------------------------------------------------- blob-test


def blob_test() -> int:
    """Round-trip the sample through the running app: (deployment) on the slot the deploy step ran the image on,
    adding its answer to the package step's table; else through the storage account of connection-string."""
    connection_string = io.get_input("connection-string")
    io.mask_connection_string(connection_string)  # before anything else can print it, in every form (the SAS too)

    from ..roundtrip import round_trip

    report_path = io.default_report_path()
    project = _project()
    deployment_file = io.get_input("deployment")
    with io.group(f"test the sample of {project.name}"):
        if deployment_file:  # target azure: the slot the deploy step ran the image on, by identity
            from ..azure import test_slot
            from .handoff import load_deployment

            deployment = load_deployment(Path(deployment_file))
            settings, _, credential = _azure()
            report = test_slot(project, deployment, credential=credential, progress=io.echo, settings=settings,
                               timeout=io.get_float("blob-test-timeout", 0.0) or None)  # by the trigger
        else:
            report = round_trip(project, connection_string=connection_string or None,
                                timeout=io.get_float("blob-test-timeout", 60.0), progress=io.echo)
    if not deployment_file:
        publish_test(report, report_path)
        return 0
    # target azure: the slot's answer joins the package step's (run() directly and the function, in the image).
    table = _slot_golden(project, deployment, report)
    publish_golden(table)
    publish_test(report, report_path)
    table.check()
    return 0


def _slot_golden(project: Any, deployment: Any, report: Any) -> golden.Golden:
    """The package step's table (the `golden` input) with the slot's answer; flex has none: its app is
    zip-deployed, no image is built or self-tested."""
    from .handoff import load_golden

    golden_file = io.get_input("golden")
    if golden_file:
        table = load_golden(Path(golden_file))
    else:
        table = golden.for_project(project)
        for place in (golden.DIRECT, golden.IMAGE):
            table.set(place, golden.Answer(skipped="no image (flex: the app is zip-deployed)"))
        table.set(golden.LOCAL_HOST, golden.Answer(skipped=NO_LOCAL_HOST))
    where = deployment.slot_url if deployment.slot else f"{deployment.app_url} (flex: no slot)"
    table.set(golden.SLOT, golden.from_report(report, where))
    return table


# -------------------------------------------------------------------------------------------- swap


def swap() -> int:
    """The tested slot becomes production (only after the test passed); nothing to do when production already
    runs the image."""
    from ..azure import swap as swap_slot
    from .handoff import load_deployment

    deployment = load_deployment(Path(io.get_input("deployment", required=True)))
    if not deployment.changed or deployment.slot is None:
        io.set_output("app-url", deployment.app_url)
        io.set_output("swapped", "false")
        return 0
    settings, _, credential = _azure()
    with io.phases() as progress:
        progress(f"==> swap {deployment.slot} into production")
        deployment = swap_slot(deployment, credential=credential, progress=progress, settings=settings,
                               timeout=io.get_float("deploy-timeout", DEFAULT_DEPLOY_TIMEOUT))
    io.set_output("app-url", deployment.app_url)
    io.set_output("swapped", "true")
    io.add_summary(summary_for_swap(deployment.slot, deployment.app_url, deployment.image))
    return 0
