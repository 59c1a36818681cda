"""package, serve, blob-test, up: the app on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import CONNECTION_ENV
from ..errors import SampleTestFailed
from .base import POLL_INTERVAL, TIMEOUT, check_service_bus_sample, echo_progress, finish, main, output_file, write_json

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
@click.option("--repository", metavar="[REGISTRY/]REPOSITORY",
              help="Image repository; with a registry host the image is pushed there.  [default: modelfunc/<name>]")
@click.option("--image", "image_repository", hidden=True,  # deprecated: what --repository is now called
              help="The old name of --repository (elsewhere --image is an image by digest, or up's mode).")
@click.option("--tag", help="Image tag.  [default: the git commit (with -dirty), else a content hash]")
@click.option("--registry-username", envvar="MODELFUNC_REGISTRY_USERNAME", show_envvar=True,
              help="Registry user; the password is read from MODELFUNC_REGISTRY_PASSWORD only.")
@click.option("--pip-cache", type=click.Path(file_okay=False, path_type=Path),
              help="pip cache for resolving dependencies.  [default: ~/.cache/modelfunc/pip]")
@click.option("--refresh-dependencies", is_flag=True,
              help="Resolve the dependencies again instead of reusing the layer cached for these requirements.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
              help="Also write the result (image reference, digest, layers, self-test) as JSON here.")
def package(repo: Path, config_file: str | None, out: Path | None, base_image: str | None, no_build: bool,
            repository: str | None, image_repository: str | None, tag: str | None, registry_username: str | None,
            pip_cache: Path | None, refresh_dependencies: bool, json_file: Path | None, pull: bool) -> None:
    """Render REPO into a Functions app and an image: build it, self-test it, push it.

    The result is printed as REGISTRY/REPOSITORY@sha256:... (deploy by digest, never by tag).
    """
    from .. import image
    from ..config import load_project

    project = load_project(repo, config_file=config_file)
    try:
        result = image.package(project, out, build_image=not no_build, base_image=base_image,
                               repository=repository or image_repository, tag=tag, username=registry_username,
                               password=os.environ.get("MODELFUNC_REGISTRY_PASSWORD"), cache_dir=pip_cache,
                               refresh=refresh_dependencies, pull=pull, progress=echo_progress)
    except image.SelfTestFailed as e:
        write_json(json_file, e.packaged.summary())  # type: ignore[attr-defined]
        raise
    click.echo(f"Packaged {project.name} ({project.trigger.type} trigger): {result.context.dir}", err=True)
    write_json(json_file, result.summary())
    if result.reference:
        click.echo(result.reference)


# ---------------------------------------------------------------------------- serve


def _app_dir(path: Path, out: Path | None) -> tuple[Path, str | None]:
    """An app directory to serve, and its Python version when known: PATH itself, or the app rendered from the
    model repo at PATH."""
    if (path / "function_app.py").is_file():
        return path, None
    from ..appgen import render
    from ..config import load_project

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


def _master_key_env(settings: dict[str, str], host: str) -> dict[str, str]:
    """The admin API's master key, chosen here as the host would choose it and masked in a workflow's log before
    the host prints a generated one in its banner; passed to the host (all its workers) as app settings."""
    from ..action.io import mask
    from ..localhost.appsettings import MASTER_KEY_GENERATED_SETTING, MASTER_KEY_SETTING, choose_master_key

    key, source = choose_master_key(settings, host)
    mask(key)
    if source != "generated":
        return {}
    return {MASTER_KEY_SETTING: key or "", MASTER_KEY_GENERATED_SETTING: "1"}


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
              help="Seconds between blob container scans while blobs arrive (0.01-60); while idle the scans "
                   "back off, keeping them under 3 % of a core.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Where to package a model repo.")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
              help="Write {url, state} JSON here once the host is ready.")
@click.option("--max-body-size", type=click.IntRange(min=1), metavar="BYTES",
              help="Largest request body (413 above it).  [default: the app setting "
                   "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, else 104857600 as the Functions host]")
@click.option("--workers", type=click.IntRange(1, 10), metavar="N",
              help="Worker processes sharing the port, each loading the app and running init() once (blob and "
                   "Service Bus listeners in one of them).  [default: the app setting "
                   "FUNCTIONS_WORKER_PROCESS_COUNT, else 1]")
@click.option("--refresh-dependencies", is_flag=True,
              help="Resolve the app's requirements again instead of using its lock.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def serve(path: Path, host: str, port: int, connection_string: str | None, settings: tuple[str, ...],
          azurite: bool | None, poll_interval: float, out: Path | None, ready_file: Path | None,
          max_body_size: int | None, workers: int | None, refresh_dependencies: bool, verbose: int) -> None:
    """Run the app locally: HTTP at /api/<route>, blob triggers on Azurite or any storage account.

    PATH is a model repo (packaged first) or an app directory with function_app.py.
    """
    from .. import appenv
    from ..localhost.appsettings import read_local_settings

    app_dir, python_version = _app_dir(path, out)
    given = _parse_settings(settings)  # refused here, before any work
    local = read_local_settings(app_dir)  # likewise (the host reads it again, in the app's environment)
    extra = _master_key_env({**local, **os.environ, **given}, host)
    _, env = appenv.for_app(app_dir, python_version=python_version, refresh=refresh_dependencies,
                            progress=echo_progress)
    args = [str(app_dir.resolve()), "--host", host, "--port", str(port), "--poll-interval", repr(poll_interval),
            "--azurite", {None: "auto", True: "on", False: "off"}[azurite], "--verbose", str(verbose)]
    args += [a for s in settings for a in ("--setting", s)]
    if ready_file:
        args += ["--ready-file", str(ready_file.absolute())]
    if max_body_size:
        args += ["--max-body-size", str(max_body_size)]
    if workers:
        args += ["--workers", str(workers)]
    if connection_string:
        extra[CONNECTION_ENV] = connection_string
    code = appenv.run_host(env, args, extra_env=extra)  # the app runs with its own Python, not this one
    if code:
        sys.exit(code)


# ---------------------------------------------------------------------------- blob-test


@main.command("blob-test")
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--connection-string", envvar=CONNECTION_ENV, show_envvar=True,
              help="Storage account the app listens to.  [default: the trigger's connection setting from the env]")
@click.option("--url", help="HTTP trigger: the function URL to POST the sample to.")
@click.option("--function-key", envvar="MODELFUNC_FUNCTION_KEY", help="HTTP trigger: x-functions-key to send.")
@click.option("--host-url", help="Service Bus trigger: the local host's base URL to invoke the function through.")
@click.option("--timeout", default=60.0, type=TIMEOUT, show_default=True, help="Seconds to wait for the output.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
              help="Also write the report as JSON here.")
@click.option("--keep-blobs", is_flag=True, help="Leave the test input/output blobs in place.")
def blob_test(repo: Path, connection_string: str | None, url: str | None, function_key: str | None,
              host_url: str | None, timeout: float, report_file: Path | None, keep_blobs: bool) -> None:
    """Round-trip the sample through a running app and compare with the expected output."""
    from ..config import load_project
    from ..roundtrip import round_trip

    project = load_project(repo)
    if host_url:
        check_service_bus_sample(project)
    report = round_trip(project, connection_string=connection_string, url=url, function_key=function_key,
                        host_url=host_url, timeout=timeout, keep=keep_blobs, progress=echo_progress)
    finish(report, report_file)


# ---------------------------------------------------------------------------- up


@main.command()
@click.argument("repo", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--target", type=click.Choice(["local"]), default="local", hidden=True,  # kept for old scripts
              help="Only local (for Azure: `modelfunc package`, then `deploy`).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Build directory.  [default: REPO/build]")
@click.option("--timeout", default=60.0, type=TIMEOUT, show_default=True,
              help="Seconds to wait for start-up and for the output.")
@click.option("--install-requirements", is_flag=True, hidden=True,
              help="No longer needed: the app runs from its own environment, made from its lock.")
@click.option("--refresh-dependencies", is_flag=True,
              help="Resolve the app's requirements again instead of reusing the lock made for them.")
@click.option("--connection-string", envvar=CONNECTION_ENV, show_envvar=True,
              help="Blob trigger: the storage account to use.  [default: an Azurite started for the run]")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
              help="Also write the test report as JSON here.")
@click.option("--image", "image_mode", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              envvar="MODELFUNC_UP_IMAGE", show_envvar=True,  # local_up.UP_IMAGE_ENV
              help="Also build the image and self-test it (a column of the golden table); auto: when a Docker "
                   "engine answers.")
@click.option("--base-image", help="Base image of the image.  [default: "
              "mcr.microsoft.com/azure-functions/python:4-python<python_version>]")
@click.option("--golden", "golden_file", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
              help="Also write the golden table (each place's answer to the sample) as JSON here.")
def up(repo: Path, target: str, out: Path | None, timeout: float, install_requirements: bool,
       refresh_dependencies: bool, connection_string: str | None, report_file: Path | None, image_mode: str,
       base_image: str | None, golden_file: Path | None) -> None:
    """The whole pipeline: package (and build the image), run on the local default (Azurite + local host), test
    the sample, and show its answer from run() directly, the local host and the image side by side."""
    from .. import up as local_up
    from ..config import load_project

    if install_requirements:
        click.echo("note: --install-requirements is no longer needed (nothing is installed into modelfunc's own "
                   "Python): the app runs from its own environment, made from its lock", err=True)
    project = load_project(repo)
    check_service_bus_sample(project)
    result = local_up.up(project, out, timeout=timeout, refresh=refresh_dependencies,
                      connection_string=connection_string, progress=echo_progress, image=image_mode,
                      base_image=base_image)
    write_json(golden_file, result.golden.to_dict())
    if result.report is None:  # --no-test does not exist here: run_test is always on
        raise SampleTestFailed("the sample was not tested")
    click.echo(result.report.render())
    if report_file:
        from ..roundtrip import write_report

        write_report(result.report, report_file)
    click.echo(result.golden.render_text())
    if not result.report.passed:
        raise SampleTestFailed("the sample did not round-trip: see the report above")
    result.golden.check()
    click.echo(result.check_environment())

