"""init, sample record, new: starting a model repo (from an Azure ML v1 project, or from the template)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import SampleTestFailed
from .base import TIMEOUT, echo_progress, main

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
    from .. import amlv1
    from ..config import CONFIG_FILE
    from ..errors import ConfigError, OptionError

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
    from .. import amlv1
    from ..config import load_project
    from ..errors import OptionError

    project = load_project(repo, config_file=config_file, require_expected=False)
    asks = _asks(interactive)
    if not yes and not asks:
        raise OptionError("is required when stdin is not a terminal: nothing was written", field="--yes",
                          hint="check the answer first (run it in a terminal), then: modelfunc sample record --yes")
    sample_in = project.sample_input.relative_to(project.root)
    expected = project.sample_expected.relative_to(project.root)
    answer = amlv1.score_sample(project, timeout=timeout, progress=echo_progress)
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


# Each option answers the template variable named beside it (template/cookiecutter.json); newproject checks them all.
_TEMPLATE_OPTIONS = (
    ("--name", "project_name", "Project name, a title for people: the folder and the Azure names are made from it.  "
                               "[default: Diabetes Scorer]"),
    ("--trigger", "trigger", "What starts a scoring: blob, http or service-bus-queue.  [default: blob]"),
    ("--input-path", "blob_input_path", "Blob: the input path pattern, with {blobname}."),
    ("--output-path", "blob_output_path", "Blob: the output path pattern, in another container."),
    ("--auth-level", "http_auth_level", "HTTP: who may call it: function, anonymous or admin."),
    ("--input-queue", "service_bus_input_queue", "Service Bus: the queue the requests arrive on."),
    ("--output-queue", "service_bus_output_queue", "Service Bus: the queue the answers go to."),
    ("--python-version", "python_version", "Python of the Functions image: 3.11, 3.12 or 3.13."),
    ("--cache", "cache", "Cache predictions: none or redis."),
    ("--app-name", "app_name", "Azure Function App name.  [default: made from the project name]"),
    ("--resource-group", "resource_group", "Azure resource group.  [default: rg-<project folder>]"),
    ("--location", "location", "Azure region."),
    ("--storage-prefix", "storage_prefix", "Azure storage account name prefix.  [default: made from the project name]"),
    ("--registry", "registry", "Azure Container Registry name.  [default: made from the project name]"),
    ("--action-ref", "action_ref", "The modelfunc GitHub Action the workflow uses (owner/repo@version)."),
)


def _template_options(fn):  # noqa: ANN001, ANN202
    for flag, variable, text in reversed(_TEMPLATE_OPTIONS):
        fn = click.option(flag, variable, help=text)(fn)
    return fn


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@_template_options
@click.option("--no-input", is_flag=True, help="Ask nothing: each value no option gives is the template's default.")
def new(directory: Path, no_input: bool, **given: str | None) -> None:
    """Start a model repo from modelfunc's template, in a new folder (named after the project) in DIRECTORY.

    Asks only what applies to the trigger chosen (an option answers its question instead), checks each answer as
    it is given (a bad one is asked again) and generates nothing before all are in. Answers are read from stdin,
    a terminal or not (a here-doc works; an empty line takes the default shown); when stdin ends first and is not
    a terminal (</dev/null), the questions left take the template's defaults, as `cookiecutter --no-input` does.
    `cookiecutter <modelfunc repo> --directory template` makes the same repo.
    """
    from ..newproject import new as new_project

    options = {variable: flag for flag, variable, _ in _TEMPLATE_OPTIONS}
    project = new_project(directory, {k: v for k, v in given.items() if v is not None}, options=options,
                          ask=not no_input)
    click.echo(project)
