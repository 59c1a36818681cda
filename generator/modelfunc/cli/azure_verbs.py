"""deploy, destroy: the app in Azure. Signing in goes through the action wing's sign-in, so that in a workflow
the job's OIDC token is used as the action would."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..useroptions import (
    DEFAULT_DEPLOY_TIMEOUT,
    DEFAULT_PLAN,
    DEFAULT_SKU,
    DEFAULT_SLOT,
    azure_settings,
    deploy_options,
)
from .base import TIMEOUT, echo_progress, finish, main, output_file, write_json

# ---------------------------------------------------------------------------- deploy / destroy (Azure)


def _azure_credential(tenant_id: str | None, client_id: str | None, cloud=None):  # noqa: ANN001, ANN202
    from ..action.signin import credential  # in a workflow the job's OIDC token, as the action signs in

    return credential(tenant_id, client_id, cloud)


# modelfunc.azure.clouds.NAMES, ENV_CLOUD and ENV_ARM_ENDPOINT (kept here so that --help imports no Azure SDK)
_CLOUD_NAMES = ("AzureCloud", "AzureChinaCloud", "AzureUSGovernment")


def _signin_options(fn):  # noqa: ANN001, ANN202
    """Where and as whom (deploy and destroy): the subscription, the OIDC sign-in, the cloud."""
    for option in reversed((
        click.option("--subscription-id", envvar="AZURE_SUBSCRIPTION_ID", show_envvar=True,
                     help="Azure subscription id."),
        click.option("--tenant-id", envvar="AZURE_TENANT_ID", show_envvar=True, help="Azure AD tenant (OIDC sign-in)."),
        click.option("--client-id", envvar="AZURE_CLIENT_ID", show_envvar=True,
                     help="App registration (OIDC sign-in)."),
        click.option("--cloud", "cloud_name", type=click.Choice(_CLOUD_NAMES), default=_CLOUD_NAMES[0],
                     show_default=True, envvar="MODELFUNC_CLOUD", show_envvar=True, help="The Azure cloud."),
        click.option("--arm-endpoint", envvar="MODELFUNC_ARM_ENDPOINT", show_envvar=True, metavar="URL",
                     help="Azure Resource Manager endpoint of an Azure Stack Hub or private cloud (its "
                          "/metadata/endpoints says where to sign in)."),
    )):
        fn = option(fn)
    return fn


def _credential_for(tenant_id: str | None, client_id: str | None, cloud):  # noqa: ANN001, ANN202
    # Without a cloud the call keeps its two-argument form (tests replace _azure_credential with one).
    return _azure_credential(tenant_id, client_id, cloud) if cloud is not None else \
        _azure_credential(tenant_id, client_id)


@main.command()
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_file", help="Config file, relative to REPO.  [default: modelfunc.yaml]")
@click.option("--image", help="The image by digest, as `modelfunc package` printed it: REGISTRY/REPOSITORY@sha256:...")
@click.option("--app-name", help="Function app name.  [default: the project's name]")
@click.option("--resource-group", help="Resource group.  [default: <app-name>-rg]")
@click.option("--location", help="Azure location for what is created, e.g. westeurope.  [default: the group's]")
@click.option("--registry", help="Container registry (login server or resource id).  [default: the image's]")
@click.option("--slot-name", default=DEFAULT_SLOT, show_default=True, help="The slot the image is tested on.")
@click.option("--hosting-plan", type=click.Choice(["premium-container", "flex"]), default=DEFAULT_PLAN,
              show_default=True, help="Elastic Premium running the image, or Flex Consumption (zip deploy).")
@click.option("--sku", default=DEFAULT_SKU, show_default=True,
              help="Plan SKU for premium-container (EP1-EP3, P1v3...).")
@click.option("--storage-prefix", help="Storage account names' prefix (3-20 a-z0-9).  [default: from the app name]")
@click.option("--no-swap", is_flag=True, help="Leave the tested image on the slot; production is not changed.")
@click.option("--no-test", is_flag=True, help="Swap without the sample's round trip (the image's self-test ran).")
@click.option("--dry-run", is_flag=True, help="Read only: print what would be created, updated or left unchanged.")
@click.option("--timeout", default=DEFAULT_DEPLOY_TIMEOUT, type=TIMEOUT, show_default=True,
              help="Seconds for each long operation and readiness.")
@click.option("--test-timeout", type=TIMEOUT, default=None,
              help="Seconds to wait for the sample's output.  [default: 600 for a polling blob trigger (its "
                   "documented latency in Azure), else 120]")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
              help="Also write the test report as JSON here.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
              help="Also write the deployment (URLs, state, plan; secrets masked) as JSON here.")
@_signin_options
def deploy(repo: Path, config_file: str | None, image: str | None, app_name: str | None, resource_group: str | None,
           location: str | None, registry: str | None, slot_name: str, hosting_plan: str, sku: str,
           storage_prefix: str | None, subscription_id: str | None, tenant_id: str | None, client_id: str | None,
           no_swap: bool, no_test: bool, dry_run: bool, timeout: float, test_timeout: float | None,
           report_file: Path | None, json_file: Path | None, cloud_name: str, arm_endpoint: str | None) -> None:
    """Deploy to Azure Functions: provision, run the image on a slot, test the sample there, swap.

    The Redis connection string (when cache.redis is configured) is read from MODELFUNC_REDIS_CONNECTION_STRING.
    """
    from .. import azure
    from ..config import load_project
    from ..errors import OptionError

    project = load_project(repo, config_file=config_file)
    if hosting_plan == "premium-container" and not image:
        raise OptionError("is required for the premium-container plan", field="image",
                          hint="the REGISTRY/REPOSITORY@sha256:... that `modelfunc package --repository ...` printed")
    options = deploy_options(
        subscription_id, app_name=app_name, resource_group=resource_group, location=location, registry=registry,
        slot_name=slot_name, hosting_plan=hosting_plan, sku=sku, storage_prefix=storage_prefix, no_swap=no_swap,
        run_test=not no_test, timeout=timeout, test_timeout=test_timeout,
        redis_connection_string=os.environ.get("MODELFUNC_REDIS_CONNECTION_STRING"))
    from ..azure.options import resolve_names

    resolve_names(project, options)  # every option checked before signing in
    settings, cloud = azure_settings(cloud_name, arm_endpoint)
    credential = _credential_for(tenant_id, client_id, cloud)
    result = azure.deploy(project, image or "", options, credential=credential, progress=echo_progress,
                          settings=settings, dry_run=dry_run)
    if dry_run:
        click.echo(result.plan.render())
        write_json(json_file, {"plan": result.plan.to_dict()})
        return
    deployment = result.deployment
    assert deployment is not None
    write_json(json_file, {**deployment.summary(), "plan": result.plan.to_dict()})
    click.echo(f"{deployment.app_name}: {deployment.state.value}; production {deployment.app_url}"
               + (f", slot {deployment.slot_url}" if deployment.slot else ""), err=True)
    if result.report is not None:
        finish(result.report, report_file)
    click.echo(deployment.app_url)


@main.command()
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--app-name", help="Function app name.  [default: the name of the project in REPO]")
@click.option("--resource-group", help="Resource group.  [default: <app-name>-rg]")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--timeout", default=DEFAULT_DEPLOY_TIMEOUT, type=TIMEOUT, show_default=True,
              help="Seconds for each long operation.")
@_signin_options
def destroy(repo: Path, app_name: str | None, resource_group: str | None, subscription_id: str | None,
            tenant_id: str | None, client_id: str | None, dry_run: bool, timeout: float, cloud_name: str,
            arm_endpoint: str | None) -> None:
    """Remove what `modelfunc deploy` created for the app (found by its modelfunc-app tag); fine when already gone."""
    from .. import azure
    from ..config import load_project
    from ..errors import OptionError

    name = app_name or load_project(repo).name
    if not subscription_id:
        raise OptionError("is required", field="subscription-id", hint="or set AZURE_SUBSCRIPTION_ID")
    settings, cloud = azure_settings(cloud_name, arm_endpoint)
    plan = azure.destroy(name, resource_group, subscription_id=subscription_id,
                         credential=_credential_for(tenant_id, client_id, cloud), progress=echo_progress,
                         settings=settings, dry_run=dry_run, timeout=timeout)
    click.echo(plan.render())


