"""The ``modelfunc`` command line: thin verbs over the library modules."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path

import click

from . import CONNECTION_ENV, __version__
from .errors import ModelfuncError, SampleTestFailed


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except ModelfuncError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelfunc")
def main() -> None:
    """Package an Azure ML-style model repo into an Azure Functions app, run it locally, test it."""


def _echo_progress(message: str) -> None:
    click.echo(message, err=True)


# ---------------------------------------------------------------------------- option values checked on parsing

MAX_TIMEOUT = 24 * 3600.0  # a day (github.MAX_SECONDS for action inputs): beyond it a wait is a hang


class _Seconds(click.types.FloatParamType):
    """A float option (``'soon' is not a valid float``, as before) that is also a usable number of seconds:
    finite (nan and inf waited for ever) and within [low, high] (a negative wait, or a poll of 0, busy-loops)."""

    def __init__(self, low: float, high: float, *, low_included: bool, rule: str) -> None:
        self.low, self.high, self.low_included, self.rule = low, high, low_included, rule

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201
        number = super().convert(value, param, ctx)
        above_low = number >= self.low if self.low_included else number > self.low
        if not (math.isfinite(number) and above_low and number <= self.high):
            self.fail(f"{str(value)!r} is not {self.rule}", param, ctx)
        return number


TIMEOUT = _Seconds(0.0, MAX_TIMEOUT, low_included=False,
                   rule=f"a number of seconds greater than 0 and at most {MAX_TIMEOUT:.0f} (a day)")
POLL_INTERVAL = _Seconds(0.01, 60.0, low_included=True, rule="a number of seconds from 0.01 to 60")


def _output_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--json / --report / --ready-file / --golden: refused before any work when the file could never be written
    (a parent that is a file, or a folder that is not writable), instead of a traceback at the end."""
    if value is None:
        return None
    for parent in (value.parent, *value.parent.parents):
        try:
            info = parent.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue  # created on writing; or below a file, which the walk up finds
        except OSError as e:
            raise click.BadParameter(f"{str(value)!r} cannot be written: {parent}: {e.strerror}", ctx, param) from None
        if not stat.S_ISDIR(info.st_mode):
            raise click.BadParameter(f"{str(value)!r} cannot be written: {parent} is a file, not a folder", ctx, param)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise click.BadParameter(f"{str(value)!r} cannot be written: the folder {parent} is not writable",
                                     ctx, param)
        break
    return value


def _check_service_bus_sample(project) -> None:  # noqa: ANN001
    """A Service Bus sample goes to the local host's admin API as text: say so before any work, not as a traceback."""
    if project.trigger.type == "service-bus-queue":
        from .config import sample_text

        sample_text(project)


# ---------------------------------------------------------------------------- package


@main.command()
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_file", help="Config file, relative to REPO.  [default: modelfunc.yaml]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory for the app and the build context.  [default: REPO/build]")
@click.option("--base-image", help="Base image of the Dockerfile.  [default: "
              "mcr.microsoft.com/azure-functions/python:4-python<python_version>]")
@click.option("--no-build", is_flag=True, help="Write the app and the build context only: no engine needed.")
@click.option("--pull/--no-pull", default=True, show_default=True,
              help="Let the engine pull a base image it does not have.")
@click.option("--image", "repository", metavar="[REGISTRY/]REPOSITORY",
              help="Image repository; with a registry host the image is pushed there.  [default: modelfunc/<name>]")
@click.option("--tag", help="Image tag.  [default: the git commit (with -dirty), else a content hash]")
@click.option("--registry-username", envvar="MODELFUNC_REGISTRY_USERNAME", show_envvar=True,
              help="Registry user; the password is read from MODELFUNC_REGISTRY_PASSWORD only.")
@click.option("--pip-cache", type=click.Path(file_okay=False, path_type=Path),
              help="pip cache for resolving dependencies.  [default: ~/.cache/modelfunc/pip]")
@click.option("--refresh-dependencies", is_flag=True,
              help="Resolve the dependencies again instead of reusing the layer cached for these requirements.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), callback=_output_file,
              help="Also write the result (image reference, digest, layers, self-test) as JSON here.")
def package(repo: Path, config_file: str | None, out: Path | None, base_image: str | None, no_build: bool,
            repository: str | None, tag: str | None, registry_username: str | None, pip_cache: Path | None,
            refresh_dependencies: bool, json_file: Path | None, pull: bool) -> None:
    """Render REPO into a Functions app and an image: build it, self-test it, push it.

    The result is printed as REGISTRY/REPOSITORY@sha256:... (deploy by digest, never by tag).
    """
    from . import image
    from .config import load_project

    project = load_project(repo, config_file=config_file)
    try:
        result = image.package(project, out, build_image=not no_build, base_image=base_image,
                               repository=repository, tag=tag, username=registry_username,
                               password=os.environ.get("MODELFUNC_REGISTRY_PASSWORD"), cache_dir=pip_cache,
                               refresh=refresh_dependencies, pull=pull, progress=_echo_progress)
    except image.SelfTestFailed as e:
        _write_json(json_file, e.packaged.summary())  # type: ignore[attr-defined]
        raise
    click.echo(f"Packaged {project.name} ({project.trigger.type} trigger): {result.context.dir}", err=True)
    _write_json(json_file, result.summary())
    if result.reference:
        click.echo(result.reference)


def _write_json(path: Path | None, data: dict[str, object]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- serve


def _app_dir(path: Path, out: Path | None) -> tuple[Path, str | None]:
    """An app directory to serve, and its Python version when known: PATH itself, or the app rendered from the
    model repo at PATH."""
    if (path / "function_app.py").is_file():
        return path, None
    from .appgen import render
    from .config import load_project

    project = load_project(path)
    for note in project.notes:
        click.echo(f"note: {note}", err=True)
    result = render(project, out)
    click.echo(f"Packaged {project.name} into {result.out_dir}", err=True)
    return result.app_dir, project.config.python_version


def _parse_settings(pairs: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--setting")
        settings[key] = value
    return settings


@main.command()
@click.argument("path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=7071, show_default=True, help="Port (0 picks a free one).")
@click.option("--connection-string", envvar=CONNECTION_ENV, show_envvar=True,
              help="Storage account for the blob trigger and outputs (any Azure Storage connection string).")
@click.option("--setting", "settings", multiple=True, metavar="NAME=VALUE", help="An app setting; repeatable.")
@click.option("--azurite/--no-azurite", default=None,
              help="Start the embedded Azurite when the app needs storage.  [default: when no connection is set]")
@click.option("--poll-interval", default=0.2, type=POLL_INTERVAL, show_default=True,
              help="Seconds between blob container scans (0.01-60).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Where to package a model repo.")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), callback=_output_file,
              help="Write {url, state} JSON here once the host is ready.")
@click.option("--max-body-size", type=click.IntRange(min=1), metavar="BYTES",
              help="Largest request body (413 above it).  [default: the app setting "
                   "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, else 104857600 as the Functions host]")
@click.option("--refresh-dependencies", is_flag=True,
              help="Resolve the app's requirements again instead of using its lock.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def serve(path: Path, host: str, port: int, connection_string: str | None, settings: tuple[str, ...],
          azurite: bool | None, poll_interval: float, out: Path | None, ready_file: Path | None,
          max_body_size: int | None, refresh_dependencies: bool, verbose: int) -> None:
    """Run the app locally: HTTP at /api/<route>, blob triggers on Azurite or any storage account.

    PATH is a model repo (packaged first) or an app directory with function_app.py.
    """
    from . import appenv
    from .localhost.loader import read_local_settings

    app_dir, python_version = _app_dir(path, out)
    _parse_settings(settings)  # refused here, before any work
    read_local_settings(app_dir)  # likewise (the host reads it again, in the app's environment)
    _, env = appenv.for_app(app_dir, python_version=python_version, refresh=refresh_dependencies,
                            progress=_echo_progress)
    args = [str(app_dir.resolve()), "--host", host, "--port", str(port), "--poll-interval", repr(poll_interval),
            "--azurite", {None: "auto", True: "on", False: "off"}[azurite], "--verbose", str(verbose)]
    args += [a for s in settings for a in ("--setting", s)]
    if ready_file:
        args += ["--ready-file", str(ready_file.absolute())]
    if max_body_size:
        args += ["--max-body-size", str(max_body_size)]
    extra = {CONNECTION_ENV: connection_string} if connection_string else {}
    code = appenv.run_host(env, args, extra_env=extra)  # the app runs with its own Python, not this one
    if code:
        sys.exit(code)


# ---------------------------------------------------------------------------- blob-test


def _finish(report, report_file: Path | None) -> None:  # noqa: ANN001
    from .blobtest import write_report

    click.echo(report.render())
    if report_file:
        write_report(report, report_file)
    if not report.passed:
        raise SampleTestFailed("the sample did not round-trip: see the report above")


@main.command("blob-test")
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--connection-string", envvar=CONNECTION_ENV, show_envvar=True,
              help="Storage account the app listens to.  [default: the trigger's connection setting from the env]")
@click.option("--url", help="HTTP trigger: the function URL to POST the sample to.")
@click.option("--function-key", envvar="MODELFUNC_FUNCTION_KEY", help="HTTP trigger: x-functions-key to send.")
@click.option("--host-url", help="Service Bus trigger: the local host's base URL to invoke the function through.")
@click.option("--timeout", default=60.0, type=TIMEOUT, show_default=True, help="Seconds to wait for the output.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), callback=_output_file,
              help="Also write the report as JSON here.")
@click.option("--keep-blobs", is_flag=True, help="Leave the test input/output blobs in place.")
def blob_test(repo: Path, connection_string: str | None, url: str | None, function_key: str | None,
              host_url: str | None, timeout: float, report_file: Path | None, keep_blobs: bool) -> None:
    """Round-trip the sample through a running app and compare with the expected output."""
    from .blobtest import round_trip
    from .config import load_project

    project = load_project(repo)
    if host_url:
        _check_service_bus_sample(project)
    report = round_trip(project, connection_string=connection_string, url=url, function_key=function_key,
                        host_url=host_url, timeout=timeout, keep=keep_blobs, progress=_echo_progress)
    _finish(report, report_file)


# ---------------------------------------------------------------------------- up


@main.command()
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--target", type=click.Choice(["local"]), default="local", show_default=True,
              help="Where to run the app: the local default (for Azure: `modelfunc package`, then `deploy`).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Build directory.  [default: REPO/build]")
@click.option("--timeout", default=60.0, type=TIMEOUT, show_default=True,
              help="Seconds to wait for start-up and for the output.")
@click.option("--install-requirements", is_flag=True, hidden=True,
              help="No longer needed: the app runs from its own environment, made from its lock.")
@click.option("--refresh-dependencies", is_flag=True,
              help="Resolve the app's requirements again instead of reusing the lock made for them.")
@click.option("--connection-string", envvar=CONNECTION_ENV, show_envvar=True,
              help="Blob trigger: the storage account to use.  [default: an Azurite started for the run]")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), callback=_output_file,
              help="Also write the test report as JSON here.")
@click.option("--image", "image_mode", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              envvar="MODELFUNC_UP_IMAGE", show_envvar=True,  # local.UP_IMAGE_ENV
              help="Also build the image and self-test it (a column of the golden table); auto: when a Docker "
                   "engine answers.")
@click.option("--base-image", help="Base image of the image.  [default: "
              "mcr.microsoft.com/azure-functions/python:4-python<python_version>]")
@click.option("--golden", "golden_file", type=click.Path(dir_okay=False, path_type=Path), callback=_output_file,
              help="Also write the golden table (each place's answer to the sample) as JSON here.")
def up(repo: Path, target: str, out: Path | None, timeout: float, install_requirements: bool,
       refresh_dependencies: bool, connection_string: str | None, report_file: Path | None, image_mode: str,
       base_image: str | None,
       golden_file: Path | None) -> None:
    """The whole pipeline: package (and build the image), run on the local default (Azurite + local host), test
    the sample, and show its answer from run() directly, the local host and the image side by side."""
    from . import golden, local
    from .config import load_project

    if install_requirements:
        click.echo("note: --install-requirements is no longer needed (nothing is installed into modelfunc's own "
                   "Python): the app runs from its own environment, made from its lock", err=True)
    project = load_project(repo)
    _check_service_bus_sample(project)
    result = local.up(project, out, timeout=timeout, refresh=refresh_dependencies,
                      connection_string=connection_string, progress=_echo_progress, image=image_mode,
                      base_image=base_image)
    if golden_file:
        golden.save(result.golden, golden_file)
    if result.report is None:  # --no-test does not exist here: run_test is always on
        raise SampleTestFailed("the sample was not tested")
    click.echo(result.report.render())
    if report_file:
        from .blobtest import write_report

        write_report(result.report, report_file)
    click.echo(result.golden.render_text())
    if not result.report.passed:
        raise SampleTestFailed("the sample did not round-trip: see the report above")
    result.golden.check()
    click.echo(result.check_environment())


# ---------------------------------------------------------------------------- deploy / destroy (Azure)


def _azure_credential(tenant_id: str | None, client_id: str | None, cloud=None):  # noqa: ANN001, ANN202
    from .azure import credentials

    return credentials.get_credential(tenant_id=tenant_id, client_id=client_id, cloud=cloud)


# modelfunc.azure.clouds.NAMES, ENV_CLOUD and ENV_ARM_ENDPOINT (kept here so that --help imports no Azure SDK)
_CLOUD_NAMES = ("AzureCloud", "AzureChinaCloud", "AzureUSGovernment")


def _cloud_options(fn):  # noqa: ANN001, ANN202
    """--cloud and --arm-endpoint (deploy and destroy)."""
    fn = click.option("--arm-endpoint", envvar="MODELFUNC_ARM_ENDPOINT", show_envvar=True, metavar="URL",
                      help="Azure Resource Manager endpoint of an Azure Stack Hub or private cloud (its "
                           "/metadata/endpoints says where to sign in).")(fn)
    return click.option("--cloud", "cloud_name", type=click.Choice(_CLOUD_NAMES), default=_CLOUD_NAMES[0],
                        show_default=True, envvar="MODELFUNC_CLOUD", show_envvar=True, help="The Azure cloud.")(fn)


def _azure_settings(cloud_name: str, arm_endpoint: str | None):  # noqa: ANN202
    """(PipelineSettings, Cloud or None). The public cloud needs no look-up: the SDK's defaults are used."""
    from .azure import clients, clouds

    cloud = clouds.for_options(cloud_name, arm_endpoint)
    return clouds.with_cloud(clients.default_settings(), cloud), cloud


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
@click.option("--slot-name", default="staging", show_default=True, help="The slot the image is tested on.")
@click.option("--hosting-plan", type=click.Choice(["premium-container", "flex"]), default="premium-container",
              show_default=True, help="Elastic Premium running the image, or Flex Consumption (zip deploy).")
@click.option("--sku", default="EP1", show_default=True, help="Plan SKU for premium-container (EP1-EP3, P1v3...).")
@click.option("--storage-prefix", help="Storage account names' prefix (3-20 a-z0-9).  [default: from the app name]")
@click.option("--subscription-id", envvar="AZURE_SUBSCRIPTION_ID", show_envvar=True, help="Azure subscription id.")
@click.option("--tenant-id", envvar="AZURE_TENANT_ID", show_envvar=True, help="Azure AD tenant (OIDC sign-in).")
@click.option("--client-id", envvar="AZURE_CLIENT_ID", show_envvar=True, help="App registration (OIDC sign-in).")
@click.option("--no-swap", is_flag=True, help="Leave the tested image on the slot; production is not changed.")
@click.option("--no-test", is_flag=True, help="Swap without the sample's round trip (the image's self-test ran).")
@click.option("--dry-run", is_flag=True, help="Read only: print what would be created, updated or left unchanged.")
@click.option("--timeout", default=900.0, type=TIMEOUT, show_default=True,
              help="Seconds for each long operation and readiness.")
@click.option("--test-timeout", type=TIMEOUT, default=None,
              help="Seconds to wait for the sample's output.  [default: 600 for a polling blob trigger (its "
                   "documented latency in Azure), else 120]")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), callback=_output_file,
              help="Also write the test report as JSON here.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), callback=_output_file,
              help="Also write the deployment (URLs, state, plan; secrets masked) as JSON here.")
@_cloud_options
def deploy(repo: Path, config_file: str | None, image: str | None, app_name: str | None, resource_group: str | None,
           location: str | None, registry: str | None, slot_name: str, hosting_plan: str, sku: str,
           storage_prefix: str | None, subscription_id: str | None, tenant_id: str | None, client_id: str | None,
           no_swap: bool, no_test: bool, dry_run: bool, timeout: float, test_timeout: float | None,
           report_file: Path | None, json_file: Path | None, cloud_name: str, arm_endpoint: str | None) -> None:
    """Deploy to Azure Functions: provision, run the image on a slot, test the sample there, swap.

    The Redis connection string (when cache.redis is configured) is read from MODELFUNC_REDIS_CONNECTION_STRING.
    """
    from . import azure
    from .config import load_project
    from .errors import OptionError

    project = load_project(repo, config_file=config_file)
    if hosting_plan == "premium-container" and not image:
        raise OptionError("is required for the premium-container plan", field="image",
                          hint="the REGISTRY/REPOSITORY@sha256:... that `modelfunc package --image ...` printed")
    options = azure.DeployOptions(
        subscription_id=subscription_id or "", app_name=app_name, resource_group=resource_group, location=location,
        registry=registry, slot_name=slot_name, hosting_plan=hosting_plan, sku=sku, storage_prefix=storage_prefix,  # type: ignore[arg-type]
        no_swap=no_swap, run_test=not no_test, timeout=timeout, test_timeout=test_timeout,
        redis_connection_string=os.environ.get("MODELFUNC_REDIS_CONNECTION_STRING") or None)
    from .azure.options import resolve_names

    resolve_names(project, options)  # every option checked before signing in
    settings, cloud = _azure_settings(cloud_name, arm_endpoint)
    credential = _credential_for(tenant_id, client_id, cloud)
    result = azure.deploy(project, image or "", options, credential=credential, progress=_echo_progress,
                          settings=settings, dry_run=dry_run)
    if dry_run:
        click.echo(result.plan.render())
        _write_json(json_file, {"plan": result.plan.to_dict()})
        return
    deployment = result.deployment
    assert deployment is not None
    _write_json(json_file, {**deployment.summary(), "plan": result.plan.to_dict()})
    click.echo(f"{deployment.app_name}: {deployment.state.value}; production {deployment.app_url}"
               + (f", slot {deployment.slot_url}" if deployment.slot else ""), err=True)
    if result.report is not None:
        _finish(result.report, report_file)
    click.echo(deployment.app_url)


@main.command()
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--app-name", help="Function app name.  [default: the name of the project in REPO]")
@click.option("--resource-group", help="Resource group.  [default: <app-name>-rg]")
@click.option("--subscription-id", envvar="AZURE_SUBSCRIPTION_ID", show_envvar=True, help="Azure subscription id.")
@click.option("--tenant-id", envvar="AZURE_TENANT_ID", show_envvar=True, help="Azure AD tenant (OIDC sign-in).")
@click.option("--client-id", envvar="AZURE_CLIENT_ID", show_envvar=True, help="App registration (OIDC sign-in).")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--timeout", default=900.0, type=TIMEOUT, show_default=True, help="Seconds for each long operation.")
@_cloud_options
def destroy(repo: Path, app_name: str | None, resource_group: str | None, subscription_id: str | None,
            tenant_id: str | None, client_id: str | None, dry_run: bool, timeout: float, cloud_name: str,
            arm_endpoint: str | None) -> None:
    """Remove what `modelfunc deploy` created for the app (found by its modelfunc-app tag); fine when already gone."""
    from . import azure
    from .config import load_project
    from .errors import OptionError

    name = app_name or load_project(repo).name
    if not subscription_id:
        raise OptionError("is required", field="subscription-id", hint="or set AZURE_SUBSCRIPTION_ID")
    settings, cloud = _azure_settings(cloud_name, arm_endpoint)
    plan = azure.destroy(name, resource_group, subscription_id=subscription_id,
                         credential=_credential_for(tenant_id, client_id, cloud), progress=_echo_progress,
                         settings=settings, dry_run=dry_run, timeout=timeout)
    click.echo(plan.render())


# ---------------------------------------------------------------------------- init, sample record (Azure ML v1)

_TRIGGER_CHOICES = ("http", "blob", "service-bus-queue", "service_bus_queue")  # the last: the old package()'s name
_INTERACTIVE_HELP = "Ask for what is not given.  [default: when stdin is a terminal]"


def _asks(interactive: bool | None) -> bool:
    return sys.stdin.isatty() if interactive is None else interactive


@main.command()
@click.argument("directory", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--trigger", type=click.Choice(_TRIGGER_CHOICES, case_sensitive=False),
              help="The trigger, as the old package(trigger=...) took it.")
@click.option("--input-path", help="Blob: the input blobs, e.g. input/{blobname}.json (package(input_path=...)).")
@click.option("--output-path",
              help="Blob: the output blobs, e.g. output/{blobname}_out.json (package(output_path=...)).")
@click.option("--auth-level", type=click.Choice(["anonymous", "function", "admin"], case_sensitive=False),
              help="HTTP: the auth level (package(auth_level=...)).")
@click.option("--input-queue", "--input-queue-name", "input_queue", help="Service Bus: the queue read from.")
@click.option("--output-queue", "--output-queue-name", "output_queue", help="Service Bus: the queue answered on.")
@click.option("--connection", metavar="SETTING", help="Blob / Service Bus: the app setting with the connection string.")
@click.option("--python-version", help="The Python the app runs; needed when the conda file pins one Azure Functions "
                                       "does not run (python=3.6.2): its pin is then ignored, the file left as it is.")
@click.option("--name", help="The app name.  [default: the folder name]")
@click.option("--sample", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A sample input, copied into samples/ (Azure ML projects have none).")
@click.option("--inference-config", type=click.Path(path_type=Path),
              help="The inference config to read, relative to DIRECTORY.  [default: inferenceconfig.json]")
@click.option("--environment", type=click.Path(path_type=Path),
              help="The conda file (or requirements.txt), relative to DIRECTORY.  [default: inferenceconfig.json's]")
@click.option("--force", is_flag=True, help="Replace an existing modelfunc.yaml (and sample).")
@click.option("--interactive/--no-interactive", default=None, help=_INTERACTIVE_HELP)
def init(directory: Path, trigger: str | None, input_path: str | None, output_path: str | None,
         auth_level: str | None, input_queue: str | None, output_queue: str | None, connection: str | None,
         python_version: str | None, name: str | None, sample: Path | None, inference_config: Path | None,
         environment: Path | None, force: bool, interactive: bool | None) -> None:
    """Write modelfunc.yaml for an Azure ML v1 project: from inferenceconfig.json, its conda file, the model files
    beside score.py and the old azureml.contrib.functions.package() arguments (as options, or asked for)."""
    from . import amlv1
    from .config import CONFIG_FILE
    from .errors import ConfigError, OptionError

    if (directory / CONFIG_FILE).exists() and not force:
        raise ConfigError("exists already: init does not replace it", file=directory / CONFIG_FILE,
                          hint="--force writes it again from what is in the repo and the options given")
    found = amlv1.survey(directory, inference_config=inference_config, environment=environment)
    click.echo(f"Found in {directory}:", err=True)
    for line in found.found():
        click.echo(f"  {line}", err=True)
    asks = _asks(interactive)
    if trigger is None and not asks:
        raise OptionError("is required when stdin is not a terminal", field="--trigger",
                          hint="the trigger the old package(trigger=...) took: --trigger blob, http or "
                               "service-bus-queue (or run init in a terminal to be asked)")
    if trigger is None:
        trigger = click.prompt("Trigger", type=click.Choice(_TRIGGER_CHOICES[:3]), default="http")
    kind = amlv1.normal_trigger(trigger)
    if asks and kind == "blob":
        input_path = input_path or click.prompt("Input blobs (package(input_path=...))",
                                                default="input/{blobname}.json")
        output_path = output_path or click.prompt("Output blobs (package(output_path=...))",
                                                  default="output/{blobname}_out.json")
    elif asks and kind == "http":
        auth_level = auth_level or click.prompt("Auth level", type=click.Choice(["anonymous", "function", "admin"]),
                                                default="function")
    elif asks:
        input_queue = input_queue or click.prompt("Input queue (package(input_queue_name=...))")
        output_queue = output_queue or click.prompt("Output queue (package(output_queue_name=...))")
    pin = found.pin
    if asks and python_version is None and pin is not None and not pin.supported:
        python_version = click.prompt(f"{pin.where(found.root)} pins python={pin.version}, which no Azure Functions "
                                      "image runs; the app's Python", default=pin.nearest)
    if asks and sample is None and found.sample is None:
        given = click.prompt("A sample input file for the test (empty: none yet)", default="", show_default=False)
        sample = Path(given) if given.strip() else None
        if sample is not None and not sample.is_file():
            raise OptionError(f"{given!r} is not a file", field="--sample")
    answers = amlv1.InitAnswers(trigger=kind, input_path=input_path, output_path=output_path,
                                auth_level=auth_level.lower() if auth_level else None, input_queue=input_queue,
                                output_queue=output_queue, connection=connection, python_version=python_version,
                                name=name, sample=sample)
    result = amlv1.write_init(found, answers, force=force)
    for path in result.written[:-1]:
        click.echo(f"Wrote {path.relative_to(found.root)}", err=True)
    click.echo(f"Wrote {result.config.relative_to(found.root)}:\n")
    click.echo(result.text)
    has_sample = sample is not None or found.sample is not None
    click.echo("Next: " + ("modelfunc sample record  (runs the sample through run() and writes samples/expected.json), "
                           "then modelfunc up" if has_sample else
                           "copy a sample input to samples/input.json (or init --force --sample FILE), then modelfunc "
                           "sample record and modelfunc up"))


@main.group()
def sample() -> None:
    """The sample input and the output expected for it."""


@sample.command("record")
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_file", help="Config file, relative to REPO.  [default: modelfunc.yaml]")
@click.option("--yes", "-y", is_flag=True, help="Write without asking (required when stdin is not a terminal).")
@click.option("--timeout", default=120.0, type=TIMEOUT, show_default=True, help="Seconds run() may take.")
@click.option("--interactive/--no-interactive", default=None, help=_INTERACTIVE_HELP)
def sample_record(repo: Path, config_file: str | None, yes: bool, timeout: float, interactive: bool | None) -> None:
    """Run the sample through run() and write its answer as the expected output, after showing it."""
    from . import amlv1
    from .config import load_project
    from .errors import OptionError

    project = load_project(repo, config_file=config_file, require_expected=False)
    asks = _asks(interactive)
    if not yes and not asks:
        raise OptionError("is required when stdin is not a terminal: nothing was written", field="--yes",
                          hint="check the answer first (run it in a terminal), then: modelfunc sample record --yes")
    sample_in = project.sample_input.relative_to(project.root)
    expected = project.sample_expected.relative_to(project.root)
    answer = amlv1.score_sample(project, timeout=timeout, progress=_echo_progress)
    if not answer.answered:
        raise SampleTestFailed(f"run() gave no answer to {sample_in}: {answer.error}; nothing was written")
    data = amlv1.expected_bytes(project, answer.body)
    click.echo(f"run()'s answer to {sample_in}:")
    click.echo(amlv1.shown_answer(answer.body))
    if project.sample_expected.is_file() and project.sample_expected.read_bytes() == data:
        click.echo(f"{expected} holds this answer already: unchanged")
        return
    replaces = project.sample_expected.is_file()
    if not yes and not click.confirm(f"{'Replace' if replaces else 'Write'} {expected} with it?", default=False):
        click.echo("Nothing was written.", err=True)
        raise SystemExit(1)
    amlv1.write_expected(project, data)
    click.echo(f"{'Replaced' if replaces else 'Wrote'} {expected}")


# ---------------------------------------------------------------------------- new (the template)


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
# Each option's name is the template variable it answers (template/cookiecutter.json); newproject checks them all.
@click.option("--name", "project_name", help="Project name, a title for people: the folder and the Azure names are "
                                             "made from it.  [default: Diabetes Scorer]")
@click.option("--trigger", help="What starts a scoring: blob, http or service-bus-queue.  [default: blob]")
@click.option("--input-path", "blob_input_path", help="Blob: the input path pattern, with {blobname}.")
@click.option("--output-path", "blob_output_path", help="Blob: the output path pattern, in another container.")
@click.option("--auth-level", "http_auth_level", help="HTTP: who may call it: function, anonymous or admin.")
@click.option("--input-queue", "service_bus_input_queue", help="Service Bus: the queue the requests arrive on.")
@click.option("--output-queue", "service_bus_output_queue", help="Service Bus: the queue the answers go to.")
@click.option("--python-version", help="Python of the Functions image: 3.11, 3.12 or 3.13.")
@click.option("--cache", help="Cache predictions: none or redis.")
@click.option("--app-name", help="Azure Function App name.  [default: made from the project name]")
@click.option("--resource-group", help="Azure resource group.  [default: rg-<project folder>]")
@click.option("--location", help="Azure region.")
@click.option("--storage-prefix", help="Azure storage account name prefix.  [default: made from the project name]")
@click.option("--registry", help="Azure Container Registry name.  [default: made from the project name]")
@click.option("--action-ref", help="The modelfunc GitHub Action the workflow uses (owner/repo@version).")
@click.option("--no-input", is_flag=True, help="Ask nothing: each value no option gives is the template's default.")
@click.pass_context
def new(ctx: click.Context, directory: Path, no_input: bool, **given: str | None) -> None:
    """Start a model repo from modelfunc's template, in a new folder (named after the project) in DIRECTORY.

    Asks only what applies to the trigger chosen (an option answers its question instead), checks each answer as
    it is given (a bad one is asked again) and generates nothing before all are in. Answers are read from stdin,
    a terminal or not (a here-doc works; an empty line takes the default shown); when stdin ends first and is not
    a terminal (</dev/null), the questions left take the template's defaults, as `cookiecutter --no-input` does.
    `cookiecutter <modelfunc repo> --directory template` makes the same repo.
    """
    from .newproject import new as new_project

    options = {p.name: p.opts[0] for p in ctx.command.params if isinstance(p, click.Option) and p.name}
    project = new_project(directory, {k: v for k, v in given.items() if v is not None}, options=options,
                          ask=not no_input)
    click.echo(project)
