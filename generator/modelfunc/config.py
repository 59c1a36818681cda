"""modelfunc.yaml → a typed, validated :class:`Project`.

Errors name the file, the field (dotted), the line, the bad value and what is allowed. The sections have modules of
their own: ``trigger:`` (triggers.py, one class per trigger with its facts), ``samples:`` (samples.py) and ``cache:``
(cache.py); their names are re-exported here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError, ValidationInfo, field_validator, model_validator

from . import triggers
from .cache import Cache, RedisCache
from .errors import ConfigError
from .samples import Samples, load_expected, sample_text
from .sections import Strict
from .triggers import OPENAPI_ROUTE, BlobTrigger, HttpTrigger, ServiceBusQueueTrigger
from .yamlload import load_yaml

__all__ = ["APP_NAME_RE", "APP_NAME_RULE", "CONFIG_FILE", "OPENAPI_ROUTE", "TRIGGER_TYPES", "BlobTrigger", "Cache",
           "ConfigModel", "HttpTrigger", "Project", "PythonTarget", "RedisCache", "Samples", "ServiceBusQueueTrigger",
           "Trigger", "load_expected", "load_project", "nearest_python", "read_yaml", "sample_text"]

CONFIG_FILE = "modelfunc.yaml"
SUPPORTED_PYTHON = ("3.10", "3.11", "3.12", "3.13")  # what the Functions Python images run
DEFAULT_BASE_IMAGE = "mcr.microsoft.com/azure-functions/python:4-python{python_version}"
# A function app's name, as Azure takes it (Microsoft.Web/sites: 2-60 alphanumerics and hyphens, not starting or
# ending with a hyphen): the `name:` field, the name derived from the folder, and deploy's --app-name.
APP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,58}[A-Za-z0-9]")
APP_NAME_RULE = "2-60 letters, digits and hyphens, not starting or ending with a hyphen"


def nearest_python(version: str) -> str:
    """The supported Python (SUPPORTED_PYTHON) nearest to ``version`` ("3.6" → the oldest, "3.99" → the newest)."""
    def minor(v: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", v)[:2])

    wanted = minor(version)
    return min(SUPPORTED_PYTHON, key=lambda v: (abs(minor(v)[-1] - wanted[-1]) if minor(v)[:1] == wanted[:1]
                                                else 100, v))


class PythonTarget(str):
    """``python_version`` as read from modelfunc.yaml: the text ("3.11"), plus ``pin_ignored`` when the file says
    ``python_pin: ignore``, so that whatever reads the environment file for this version (environment._conda_line)
    leaves its ``python=`` pin alone, as the user asked, without another argument to pass along."""

    pin_ignored: bool

    def __new__(cls, version: str, *, pin_ignored: bool = False) -> PythonTarget:
        obj = super().__new__(cls, version)
        obj.pin_ignored = pin_ignored
        return obj


Trigger = triggers.Trigger
TRIGGER_TYPES = triggers.TRIGGER_TYPES


class ConfigModel(Strict):
    name: str | None = None
    entry_script: str = "score.py"
    model_dir: str = "model"
    # The model files one by one (files or folders, relative to the repo), instead of a model_dir: model files
    # beside score.py, as Azure ML v1 projects keep them. Each lands in the app's model/ under its own name.
    model_files: tuple[str, ...] | None = None
    environment: str | None = None
    # `ignore`: the environment file's python= pin is not checked (an Azure ML file pinning python=3.6.2, which no
    # Functions image runs, stays as it is); the app runs python_version. Declared before python_version: its
    # validator reads it.
    python_pin: Literal["check", "ignore"] = "check"
    python_version: Literal[SUPPORTED_PYTHON] = "3.11"  # type: ignore[valid-type]
    trigger: Trigger
    samples: Samples = Samples()
    cache: Cache | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `trigger: http` is shorthand for `trigger: {type: http}` with every default.
        if isinstance(data, dict) and isinstance(data.get("trigger"), str):
            data = {**data, "trigger": {"type": data["trigger"]}}
        if isinstance(data, dict) and isinstance(data.get("cache"), str):
            # `cache: redis` is shorthand for `cache: {redis: {}}`.
            data = {**data, "cache": {data["cache"]: {}}}
        if isinstance(data, dict) and isinstance(data.get("python_version"), float):
            # YAML reads 3.10 as the number 3.1: use the text the user wrote.
            version = data["python_version"]
            data = {**data, "python_version": getattr(version, "source", f"{version:g}")}
        return data

    @field_validator("python_version")
    @classmethod
    def _python_target(cls, v: str, info: ValidationInfo) -> str:
        return PythonTarget(v, pin_ignored=info.data.get("python_pin") == "ignore")

    @field_validator("model_files")
    @classmethod
    def _model_files(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for item in v or ():
            if not item.strip() or any(ch in item for ch in "*?[") or item.strip("/") in ("", "."):
                raise ValueError(f"{item!r} is not a model file: name each file (or folder) in the repo, e.g. "
                                 "'sklearn_regression_model.pkl' (patterns are not read)")
        if v is not None and len(set(v)) != len(v):
            twice = next(item for item in v if v.count(item) > 1)
            raise ValueError(f"{twice!r} is listed twice")
        return v

    @model_validator(mode="after")
    def _one_model_source(self) -> ConfigModel:
        if self.model_files is not None and "model_dir" in self.model_fields_set:
            raise ValueError("model_dir and model_files are both set: the model is either a folder (model_dir) or "
                             "the files model_files lists; keep one")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not APP_NAME_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a valid app name: {APP_NAME_RULE}, e.g. 'diabetes-scorer'")
        return v

    @field_validator("entry_script")
    @classmethod
    def _entry_script(cls, v: str) -> str:
        if not v.endswith(".py") or v.endswith("/.py") or v == ".py":
            raise ValueError(
                f"{v!r} is not a Python file: the entry script is imported as a module, so its name ends in .py, "
                "e.g. 'score.py'"
            )
        return v

    @field_validator("cache")
    @classmethod
    def _cache_setting(cls, v: Cache | None, info: ValidationInfo) -> Cache | None:
        if v is None or v.redis is None:
            return v
        setting = v.redis.connection
        taken = {"AzureWebJobsStorage": "the Functions host's storage"}
        trigger = info.data.get("trigger")
        if trigger is not None and trigger.connection is not None:
            taken[trigger.connection] = "the trigger's connection"
        if setting in taken:
            raise ValueError(
                f"redis.connection {setting!r} is already {taken[setting]} setting: the Redis connection string "
                "needs an app setting of its own, e.g. 'RedisConnectionString'"
            )
        return v


_SECTIONS = {
    (): ConfigModel,
    ("samples",): Samples,
    ("cache",): Cache,
    ("cache", "redis"): RedisCache,
    **{("trigger", name): cls for name, cls in triggers.BY_TYPE.items()},
}


@dataclass(frozen=True)
class Project:
    """A validated model repo: the config plus the resolved, existing paths it names."""

    root: Path
    config_path: Path  # modelfunc.yaml; or, without one, the Azure ML inferenceconfig.json read instead
    config: ConfigModel
    entry_script: Path
    model_dir: Path  # with model_files: the repo root, which holds them
    environment_file: Path
    sample_input: Path
    sample_expected: Path  # may not exist yet for load_project(require_expected=False): `modelfunc sample record`
    model_files: tuple[Path, ...] | None = None  # the model, file by file (modelfunc.yaml model_files), resolved
    notes: tuple[str, ...] = ()  # what the user should know about how the repo was read (the CLI prints them)

    @property
    def name(self) -> str:
        return self.config.name or _default_name(self.root)

    @property
    def trigger(self) -> triggers.AnyTrigger:
        return self.config.trigger

    @property
    def default_base_image(self) -> str:
        return DEFAULT_BASE_IMAGE.format(python_version=self.config.python_version)

    @property
    def model_paths(self) -> tuple[Path, ...]:
        """What the app's model/ is made of: the model directory, or the files (and folders) model_files lists."""
        return self.model_files if self.model_files is not None else (self.model_dir,)


def _default_name(root: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9-]+", "-", root.resolve().name).strip("-")
    return (name or "model-app")[:60].rstrip("-")


# ---------------------------------------------------------------- YAML with line numbers


def read_yaml(path: Path, *, what: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse a YAML file with the limits of :mod:`modelfunc.yamlload` (size, nesting, aliases, duplicate keys):
    (data, each key path's line). Every problem is a ConfigError with the file and the line."""
    return load_yaml(path, what=what, error=ConfigError)


def _describe(err: dict[str, Any], data: Any) -> tuple[tuple[str, ...], str]:
    """Turn one pydantic error into (field path, human message)."""
    loc = tuple(str(p) for p in err["loc"])
    kind = err["type"]
    # Drop the discriminator tag pydantic inserts: ('trigger', 'blob', 'input_path') → trigger.input_path
    path = tuple(p for i, p in enumerate(loc) if not (i == 1 and loc[0] == "trigger" and p in TRIGGER_TYPES))
    if kind == "extra_forbidden":
        section = _SECTIONS.get(loc[:-1]) if loc[:-1] in _SECTIONS else None
        fields = sorted(section.model_fields) if section else []
        guess = difflib.get_close_matches(loc[-1], fields, n=1)
        return path, (f"unknown field {loc[-1]!r}" + (f" (did you mean {guess[0]!r}?)" if guess else "")
                      + (f"; allowed here: {', '.join(fields)}" if fields else ""))
    if kind == "missing":
        return path, "is required but missing"
    if kind == "union_tag_invalid":
        bad = err["ctx"].get("tag")
        return (*path, "type"), f"{bad!r} is not a trigger type; use one of: {', '.join(TRIGGER_TYPES)}"
    if kind == "union_tag_not_found":
        return (*path, "type"), f"is missing; use one of: {', '.join(TRIGGER_TYPES)}"
    if kind == "literal_error":
        expected = err["ctx"]["expected"].replace("'", "")
        return path, f"{err['input']!r} is not allowed; use one of: {expected}"
    if kind == "value_error":
        return path, str(err["ctx"]["error"])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return path, f"must be a mapping of fields, got {type(err['input']).__name__} {err['input']!r}"
    return path, f"{err['msg'][0].lower()}{err['msg'][1:]} (got {err['input']!r})"


def load_project(root: str | Path, *, config_file: str | Path | None = None,
                 require_expected: bool = True) -> Project:
    """Read and validate a model repo. Raises ConfigError / EntryScriptError with file and field.

    Without a modelfunc.yaml (and no ``config_file``), an Azure ML v1 project's ``inferenceconfig.json`` is read
    instead (amlv1.py), with the defaults for everything it does not say; ``Project.notes`` says so.
    ``require_expected=False`` (``modelfunc sample record``, which writes it) lets samples.expected be missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"model repo directory {str(root)!r} does not exist")
    config_path = Path(config_file) if config_file else root / CONFIG_FILE
    if not config_path.is_absolute() and config_file:
        config_path = root / config_path
    try:
        found = config_path.is_file()
    except OSError as e:  # a folder on the way that cannot be searched
        raise ConfigError(f"cannot be read: {e.strerror}", file=config_path) from None
    if not found and not config_file:
        from . import amlv1

        inference = amlv1.find_inference_config(root)
        if inference is not None:
            data, notes = amlv1.config_from_inference(root, inference)
            return _resolve(root, inference, _validate(data, {}, inference), {}, require_expected=require_expected,
                            notes=tuple(notes), inference=True)
    if not found:
        raise ConfigError(
            "not found",
            file=config_path,
            hint=f"create {CONFIG_FILE} in the model repo, e.g.\n    trigger: blob\n"
            "  or scaffold a new repo with: cookiecutter <modelfunc>/template\n"
            "  or, in an Azure ML project (score.py, a conda file, inferenceconfig.json), write it: modelfunc init",
        )
    data, lines = read_yaml(config_path, what=CONFIG_FILE)
    if data is None:
        raise ConfigError("is empty", file=config_path, hint="the smallest valid file is one line: trigger: http")
    if not isinstance(data, dict):
        raise ConfigError(
            f"must be a YAML mapping (key: value lines), got {type(data).__name__}",
            file=config_path,
            hint="the smallest valid file is one line: trigger: http",
        )
    return _resolve(root, config_path, _validate(data, lines, config_path), lines, require_expected=require_expected)


def _validate(data: dict[str, Any], lines: dict[tuple[str, ...], int], config_path: Path) -> ConfigModel:
    """The config model of ``data``, or one ConfigError listing every problem with its field and line."""
    try:
        return ConfigModel.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        problems = [_describe(e, data) for e in errors]
        located = []
        for path, msg in problems:
            line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
            located.append((path, msg, line))
        first_path, first_msg, first_line = located[0]
        message = first_msg
        if len(located) > 1:
            message += "".join(
                f"\n  {config_path.name}{f':{ln}' if ln else ''}: {'.'.join(p)}: {m}" for p, m, ln in located[1:]
            )
        raise ConfigError(message, file=config_path, field=".".join(first_path), line=first_line) from None


def _resolve(root: Path, config_path: Path, model: ConfigModel, lines: dict[tuple[str, ...], int], *,
             require_expected: bool, notes: tuple[str, ...] = (), inference: bool = False) -> Project:
    """The Project: every path the config names resolved, checked to exist inside the repo and to be readable.
    ``inference``: the config was made from inferenceconfig.json (config_path), so a missing default names the
    file itself, not a field of a modelfunc.yaml that does not exist."""

    def existing(rel: str, field: str, *, is_dir: bool = False, hint: str | None = None,
                 required: bool = True) -> Path:
        p = (root / rel).resolve()
        try:
            ok = p.is_dir() if is_dir else p.is_file()
        except OSError as e:  # a folder on the way that cannot be searched (chmod 000)
            reason = "permission denied" if isinstance(e, PermissionError) else e.strerror
            raise ConfigError(f"cannot be read: {reason}", file=p,
                              hint="make the folders on the way readable by the user running modelfunc, e.g. "
                                   "chmod a+rx <folder>") from None
        try:
            p.relative_to(root.resolve())
        except ValueError:
            raise ConfigError(
                f"{rel!r} points outside the model repo", file=config_path, field=field,
                line=lines.get(tuple(field.replace("[", ".").rstrip("]").split("."))),
            ) from None
        if not ok and not required:
            return p
        if not ok and inference:
            raise ConfigError(
                f"not found: without a {CONFIG_FILE}, modelfunc read {config_path.name} and takes its {field} from "
                f"{rel}", file=p, hint=hint)
        if not ok:
            raise ConfigError(
                f"{rel!r} does not exist" + (" or is not a directory" if is_dir else ""),
                file=config_path, field=field, line=lines.get(tuple(field.replace("[", ".").rstrip("]").split("."))),
                hint=hint,
            )
        if not is_dir:
            _check_readable(p)
        return p

    if model.name is None and not APP_NAME_RE.fullmatch(_default_name(root)):
        raise ConfigError(
            f"is not set, and the folder name {root.resolve().name!r} gives the app name {_default_name(root)!r}, "
            f"which Azure would refuse: an app name is {APP_NAME_RULE}",
            file=config_path, field="name",
            hint="set the app's name in modelfunc.yaml, e.g. name: diabetes-scorer"
            + (" (`modelfunc init --name ...` writes one)" if inference else ""),
        )
    entry = existing(model.entry_script, "entry_script", hint="the AML entry script defining init() and run(data)")
    listed: tuple[Path, ...] | None = None
    if model.model_files is not None:
        listed = tuple(_model_item(existing, item, i) for i, item in enumerate(model.model_files))
        model_dir = root.resolve()
    else:
        model_dir = existing(model.model_dir, "model_dir", is_dir=True,
                             hint="put the model files in a folder, e.g. model/, or list them: "
                                  "model_files: [my_model.pkl]")
        if model_dir == entry.parent or model_dir in entry.parents:
            listed, note = _model_files_beside(model, model_dir, entry, config_path, lines)
            notes = (*notes, note)
    if model.environment:
        env_file = existing(model.environment, "environment")
    else:
        candidates = [root / "environment.yml", root / "environment.yaml", root / "requirements.txt"]
        env_file = next((c.resolve() for c in candidates if c.is_file()), None)
        if env_file is None:
            raise ConfigError(
                "no environment.yml or requirements.txt in the model repo",
                file=config_path, field="environment",
                hint="add environment.yml (conda format with a pip: section) or requirements.txt "
                "listing what score.py imports",
            )
    sample_in = existing(model.samples.input, "samples.input",
                         hint="`modelfunc init --sample FILE` copies a sample input there" if inference else
                         "a sample request body / input blob")
    sample_exp = existing(model.samples.expected, "samples.expected", required=require_expected,
                          hint="`modelfunc sample record` writes it from run()'s answer to the sample")
    project = Project(root.resolve(), config_path.resolve(), model, entry, model_dir, env_file, sample_in, sample_exp,
                      listed, notes)
    if require_expected:
        load_expected(project)  # fail early on an unreadable expected output
    return project


def _model_item(existing: Any, item: str, index: int) -> Path:
    """One entry of model_files: a file or a folder inside the repo."""
    field = f"model_files[{index}]"
    try:
        return existing(item, field, hint="list the model files by their path in the repo, e.g. "
                                          "sklearn_regression_model.pkl")
    except ConfigError as e:
        if "does not exist" not in e.message:
            raise
        try:  # a folder is fine too: its files ship under its name
            return existing(item, field, is_dir=True)
        except ConfigError:
            raise e from None


def _model_files_beside(model: ConfigModel, model_dir: Path, entry: Path, config_path: Path,
                        lines: dict[tuple[str, ...], int]) -> tuple[tuple[Path, ...], str]:
    """model_dir holds the entry script (``model_dir: .``): its code ships as the app's code, so the model layer
    takes only the model files directly in it (named as models are: sourcedir.MODEL_SUFFIXES)."""
    from .sourcedir import MODEL_SUFFIXES, find_model_files

    found = tuple(p.resolve() for p in find_model_files(model_dir))
    shown = model.model_dir
    if not found:
        raise ConfigError(
            f"{shown!r} holds the entry script {entry.name}, and no model files are directly in it (files named "
            f"{', '.join('*' + s for s in MODEL_SUFFIXES[:6])}, ...): its code ships as the app's code, so the model "
            "would be empty", file=config_path, field="model_dir", line=lines.get(("model_dir",)),
            hint="list the model files instead of model_dir, e.g. model_files: [my_model.json], or move them into a "
                 "folder of their own, e.g. model_dir: model")
    names = ", ".join(p.name for p in found)
    return found, (f"model_dir {shown!r} holds {entry.name}: its model files ({names}) are the app's model/, the "
                   "rest ships as its code")


def _check_readable(path: Path) -> None:
    """A file the config names must be readable now, not fail later with a traceback in whatever reads it."""
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise ConfigError("cannot be read: permission denied", file=path,
                          hint=f"make it readable by the user running modelfunc, e.g. chmod a+r {path.name}") from None
    except OSError as e:
        raise ConfigError(f"cannot be read: {e.strerror}", file=path) from None
