"""``modelfunc init``: modelfunc.yaml written from a :class:`~.survey.Survey` and the old ``package()`` arguments.
Nothing is half-written: each file appears whole, modelfunc.yaml last, and an existing one is replaced only with
``--force``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import APP_NAME_RE, APP_NAME_RULE, CONFIG_FILE, SUPPORTED_PYTHON, ConfigModel, _default_name, _describe
from ..errors import ConfigError, OptionError
from .inferenceconfig import relative
from .survey import ENVIRONMENT_OUT, Survey

# What the old package() called the triggers (azureml.contrib.functions: BLOB_TRIGGER, HTTP_TRIGGER, ...).
TRIGGER_ALIASES = {"service_bus_queue": "service-bus-queue", "servicebusqueue": "service-bus-queue",
                   "service-bus": "service-bus-queue", "servicebus": "service-bus-queue"}



@dataclass
class InitAnswers:
    """The old package() arguments and the rest of what init asks (None: not given)."""

    trigger: str
    input_path: str | None = None
    output_path: str | None = None
    auth_level: str | None = None
    input_queue: str | None = None
    output_queue: str | None = None
    connection: str | None = None
    python_version: str | None = None
    name: str | None = None
    sample: Path | None = None


# modelfunc.yaml field -> the init option that sets it (for errors about a value given on the command line)
OPTION_OF = {"trigger.type": "--trigger", "trigger.input_path": "--input-path", "trigger.output_path": "--output-path",
             "trigger.error_path": "--output-path", "trigger.auth_level": "--auth-level",
             "trigger.input_queue": "--input-queue", "trigger.output_queue": "--output-queue",
             "trigger.connection": "--connection", "python_version": "--python-version", "name": "--name"}


# What each trigger takes of the old package() arguments (InitAnswers' names).
TRIGGER_FIELDS = {"blob": ("input_path", "output_path", "connection"), "http": ("auth_level",),
                  "service-bus-queue": ("input_queue", "output_queue", "connection")}


def normal_trigger(value: str) -> str:
    """The modelfunc trigger type of what the old package() took (``service_bus_queue``) or modelfunc's own."""
    lowered = value.strip().lower()
    return TRIGGER_ALIASES.get(lowered, lowered)


def python_choice(found: Survey, wanted: str | None) -> tuple[str, bool, str | None]:
    """(python_version, pin ignored, why) for modelfunc.yaml: ``wanted`` (--python-version) when given, else the
    conda file's pin when a Functions image runs it, else 3.11. A pin no image runs needs ``wanted``."""
    pin = found.pin
    if wanted is not None:
        if wanted not in SUPPORTED_PYTHON:
            raise OptionError(f"{wanted!r} is not a Python version Azure Functions runs; use one of: "
                              f"{', '.join(SUPPORTED_PYTHON)}", field="--python-version")
        if pin is not None and pin.minor != wanted:
            return wanted, True, (f"{pin.where(found.root)} pins python={pin.version}"
                                  + ("" if pin.supported else ", which no Azure Functions image runs"))
        return wanted, False, None
    if pin is None:
        return "3.11", False, None
    if pin.supported:
        return pin.minor, False, None
    raise ConfigError(
        f"pins python {pin.version}, and no Azure Functions image runs Python {pin.minor} (they run "
        f"{', '.join(SUPPORTED_PYTHON)}; the nearest is {pin.nearest})", file=pin.file, field=pin.field, line=pin.line,
        hint=f"give the version the app should run: modelfunc init --python-version {pin.nearest} (modelfunc.yaml then "
             f"says python_pin: ignore, and {pin.file.name} stays as Azure ML reads it)")


def _yaml_scalar(value: str) -> str:
    """A YAML scalar for ``value``: plain when that reads back as the same string, else double-quoted (JSON)."""
    plain = re.fullmatch(r"[A-Za-z0-9_./-][A-Za-z0-9_./{}-]*", value) and not re.fullmatch(
        r"(?i)(true|false|yes|no|on|off|null|~|[-+]?[0-9._]+(e[-+]?[0-9]+)?)", value)
    return value if plain else json.dumps(value)


@dataclass
class InitResult:
    config: Path
    text: str
    written: list[Path]  # every file init created or replaced, modelfunc.yaml last


def config_text(found: Survey, answers: InitAnswers) -> tuple[str, str | None]:
    """(modelfunc.yaml's text, the sample's path in the repo to copy to) for these answers, checked: a bad value is
    an OptionError naming its option. Nothing is written."""
    root = found.root
    version, pin_ignored, why = python_choice(found, answers.python_version)
    name = answers.name or _default_name(root)
    if not APP_NAME_RE.fullmatch(name):
        raise OptionError(f"{name!r} is not a valid app name ({'from the folder name; ' if not answers.name else ''}"
                          f"{APP_NAME_RULE})", field="--name", hint="e.g. --name diabetes-scorer")
    trigger: dict[str, str] = {"type": normal_trigger(answers.trigger)}
    fields = TRIGGER_FIELDS.get(trigger["type"], ())
    for key in ("input_path", "output_path", "auth_level", "input_queue", "output_queue", "connection"):
        value = getattr(answers, key)
        if value is not None and key not in fields:
            option = OPTION_OF[f"trigger.{key}"]
            takes = [kind for kind, keys in TRIGGER_FIELDS.items() if key in keys]
            raise OptionError(f"applies to the {' and '.join(takes)} trigger, not {trigger['type']}", field=option,
                              hint=f"leave {option} out, or choose that trigger: --trigger {takes[0]}")
        if value is not None:
            trigger[key] = value
    sample_rel = None
    if answers.sample is not None:
        sample_rel = f"samples/input{answers.sample.suffix.lower() or '.json'}"
    elif found.sample is not None:
        sample_rel = relative(found.sample, root)
    sample_rel = sample_rel or "samples/input.json"
    env_rel = relative(found.environment, root) if found.environment is not None else ENVIRONMENT_OUT
    data: dict[str, Any] = {"name": name, "entry_script": relative(found.entry_script, root), "environment": env_rel,
                            "python_version": version, "trigger": trigger,
                            "samples": {"input": sample_rel, "expected": "samples/expected.json"}}
    if pin_ignored:
        data["python_pin"] = "ignore"
    if found.model_files is not None:
        data["model_files"] = list(found.model_files)
    elif found.model_dir is not None:
        data["model_dir"] = found.model_dir
    try:
        ConfigModel.model_validate(data)
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError: the first problem, as its option
        errors = getattr(exc, "errors", None)
        if errors is None:
            raise
        path, message = _describe(errors(include_url=False)[0], data)
        dotted = ".".join(path)
        raise OptionError(message, field=OPTION_OF.get(dotted, dotted)) from None

    source = found.inference.path.name if found.inference else "the repo"
    out = [f"# Written by `modelfunc init` from {source}"
           + (f" and {found.environment.name}" if found.environment is not None else "") + ".",
           "# Edit it freely; `modelfunc init --force` writes it again. Every field: the modelfunc README.",
           f"name: {_yaml_scalar(name)}",
           f"entry_script: {_yaml_scalar(data['entry_script'])}",
           f"environment: {_yaml_scalar(env_rel)}",
           f'python_version: "{version}"']
    if pin_ignored:
        out.append(f"python_pin: ignore  # {why}: the app runs Python {version}")
    if found.model_files is not None:
        out.append("model_files:" + ("" if found.model_files else " []  # no model files found"))
        out += [f"  - {_yaml_scalar(item)}" for item in found.model_files]
    elif found.model_dir is not None:
        out.append(f"model_dir: {_yaml_scalar(found.model_dir)}")
    old = {"input_path": "input_path", "output_path": "output_path", "auth_level": "auth_level",
           "input_queue": "input_queue_name", "output_queue": "output_queue_name"}
    out.append(f"trigger:  # the old package(trigger={trigger['type'].replace('-', '_')!r}"
               + "".join(f", {old[k]}=..." for k in trigger if k in old) + ")")
    out += [f"  {key}: {_yaml_scalar(value)}" for key, value in trigger.items()]
    out += ["samples:", f"  input: {_yaml_scalar(sample_rel)}",
            "  expected: samples/expected.json  # `modelfunc sample record` writes it from run()'s answer"]
    return "\n".join(out) + "\n", sample_rel


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target`` (same folder, so the final rename is atomic), removed unless renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomically(target: Path, data: bytes, *, replace_existing: bool) -> None:
    """``target`` appears whole with ``data`` or not at all. Without ``replace_existing``, an existing one (even
    one created meanwhile) is never replaced: ConfigError."""
    with _staged(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if replace_existing:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)  # fails if target exists: no check-then-write race
        except FileExistsError:
            raise ConfigError("exists already", file=target, hint="--force replaces it") from None


def write_init(found: Survey, answers: InitAnswers, *, force: bool = False) -> InitResult:
    """Write what init decided: the sample (copied into samples/), an inline environment (as environment.yml), then
    modelfunc.yaml last. Everything is checked first; an existing modelfunc.yaml is replaced only with ``force``."""
    root = found.root
    config = root / CONFIG_FILE
    if config.exists() and not force:
        raise ConfigError("exists already: init does not replace it", file=config,
                          hint="--force writes it again from what is in the repo and the options given")
    text, sample_rel = config_text(found, answers)
    plan: list[tuple[Path, bytes, bool]] = []  # (target, bytes, replace an existing one)
    if answers.sample is not None:
        source = answers.sample
        try:
            data = source.read_bytes()
        except OSError as e:
            raise OptionError(f"{str(source)!r} cannot be read: {e.strerror}", field="--sample") from None
        target = root / sample_rel  # type: ignore[operator]
        if target.exists() and target.read_bytes() != data and not force:
            raise ConfigError(f"exists already, with other contents than {source}", file=target,
                              hint="--force replaces it")
        if not target.exists() or target.read_bytes() != data:
            plan.append((target, data, True))
    if found.write_environment is not None:
        import yaml

        env_text = (f"# Written by `modelfunc init` from {found.inference.path.name if found.inference else '?'}"
                    " (environment.python.condaDependencies).\n"
                    + yaml.safe_dump(found.write_environment, sort_keys=False))
        plan.append((root / ENVIRONMENT_OUT, env_text.encode(), False))
    written, created = [], []
    try:
        for target, data, replace_existing in plan:
            existed = target.exists()
            write_atomically(target, data, replace_existing=replace_existing)
            written.append(target)
            if not existed:
                created.append(target)
        write_atomically(config, text.encode(), replace_existing=force)
    except BaseException:
        for path in created:  # nothing half-written: what this run added goes again
            path.unlink(missing_ok=True)
        raise
    written.append(config)
    return InitResult(config, text, written)
