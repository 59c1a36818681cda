"""The command group, its error handling, and what several commands share: option types, checks, writers."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import click

from .. import __version__
from ..errors import ModelfuncError, SampleTestFailed
from ..useroptions import MAX_SECONDS


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


def echo_progress(message: str) -> None:
    click.echo(message, err=True)


# ---------------------------------------------------------------------------- option values checked on parsing

MAX_TIMEOUT = MAX_SECONDS  # a day (the action's *-timeout inputs too): beyond it a wait is a hang


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


def output_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
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


def check_service_bus_sample(project) -> None:  # noqa: ANN001
    """A sample that goes to the local host's admin API as text (Service Bus): say so before any work, not as a
    traceback."""
    if project.trigger.sample_as_text:
        from ..samples import sample_text

        sample_text(project)


def write_json(path: Path | None, data: dict[str, object]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def finish(report, report_file: Path | None) -> None:  # noqa: ANN001
    from ..roundtrip import write_report

    click.echo(report.render())
    if report_file:
        write_report(report, report_file)
    if not report.passed:
        raise SampleTestFailed("the sample did not round-trip: see the report above")

