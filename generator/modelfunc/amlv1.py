"""Azure ML v1 projects as they are: ``inferenceconfig.json``, a conda file, model files beside score.py.

The Azure ML v1 docs lay a deployment out as an entry script (``score.py``), a conda file (``myenv.yml``, often
pinning ``python=3.6.2`` and listing ``azureml-defaults``), the model file downloaded beside them and an
``inferenceconfig.json`` naming the first two, which ``az ml model deploy --ic`` (and ``InferenceConfig``) read.
The retired ``azureml.contrib.functions.package(ws, [model], inference_config, functions_enabled=True,
trigger=..., input_path=..., output_path=..., auth_level=..., input_queue_name=..., output_queue_name=...)``
took the trigger on top. This module reads that layout:

* :func:`read_inference_config`: inferenceconfig.json, its keys as Azure ML writes them (``entryScript``,
  ``sourceDirectory``, ``condaFile``, ``runtime``, ``environment`` with ``python.condaDependencies`` or
  ``python.condaDependenciesFile``; ``extraDockerfileSteps``, ``baseImage``, ``enableGpu``, ``schemaFile``
  ... are not used by a Functions app, and said so). Paths are relative to ``sourceDirectory`` when it is set, as
  Azure ML has them, else to the file's folder. Every problem names the file, the key and its line.
* :func:`config_from_inference`: a modelfunc.yaml's worth of settings from it, for a repo without modelfunc.yaml
  (``config.load_project`` reads it then, and says so).
* :func:`survey` and :func:`write_init`: ``modelfunc init``, which writes modelfunc.yaml from what is there and
  the old ``package()`` arguments; nothing is half-written (each file appears whole, modelfunc.yaml last, and an
  existing one is replaced only with ``--force``).
* :func:`score_sample` and :func:`write_expected`: ``modelfunc sample record``, run() on the sample through the
  app's own self-test (local.direct_answer), then samples.expected written.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import (
    APP_NAME_RE,
    APP_NAME_RULE,
    CONFIG_FILE,
    SUPPORTED_PYTHON,
    ConfigModel,
    Project,
    _default_name,
    _describe,
    nearest_python,
)
from .errors import ConfigError, ModelfuncError, OptionError
from .sourcedir import find_model_files, is_model_file
from .yamlload import load_yaml, read_text

Progress = Callable[[str], None]

# The names Azure ML's docs and samples give the file (`az ml model deploy --ic <file>` takes any name).
INFERENCE_CONFIG_NAMES = ("inferenceconfig.json", "inference_config.json", "inference-config.json")
MAX_INFERENCE_CONFIG_BYTES = 1024 * 1024
ENVIRONMENT_OUT = "environment.yml"  # where init writes an environment given inline in inferenceconfig.json
# What the old package() called the triggers (azureml.contrib.functions: BLOB_TRIGGER, HTTP_TRIGGER, ...).
TRIGGER_ALIASES = {"service_bus_queue": "service-bus-queue", "servicebusqueue": "service-bus-queue",
                   "service-bus": "service-bus-queue", "servicebus": "service-bus-queue"}
# inferenceconfig.json keys a Functions app has no use for, and why (they are reported, never an error).
NOT_USED = {
    "extradockerfilesteps": "the Functions base image is used as it is; put what score.py needs in the conda file "
                            "or beside score.py",
    "baseimage": "the app runs on the Azure Functions Python image (`--base-image` picks another)",
    "baseimageregistry": "the app runs on the Azure Functions Python image",
    "enablegpu": "Azure Functions runs on CPUs",
    "cudaversion": "Azure Functions runs on CPUs",
    "schemafile": "an HTTP app's OpenAPI document comes from run()'s inference-schema decorators, else the samples",
    "description": "",
    "dependencies": "the entry script's whole folder ships with the app",
}
KNOWN = {"entryscript", "sourcedirectory", "condafile", "runtime", "environment", *NOT_USED}


def _line(text: str, key: str) -> int | None:
    """The line of ``"key":`` in a JSON text (the first one), for an error that points at it."""
    m = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text[: m.start()].count("\n") + 1 if m else None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() or "."


def find_inference_config(root: Path) -> Path | None:
    """The repo's inferenceconfig.json (by the names Azure ML gives it, in any case), or None; two is an error."""
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return None
    found = [root / name for name in entries if name.lower() in INFERENCE_CONFIG_NAMES and (root / name).is_file()]
    if len(found) > 1:
        raise ConfigError(f"holds {len(found)} Azure ML inference configs ({', '.join(p.name for p in found)}): "
                          "modelfunc cannot tell which one is deployed", file=root,
                          hint=f"write {CONFIG_FILE}: `modelfunc init --inference-config FILE` reads the one you name")
    return found[0] if found else None


# ------------------------------------------------------------------------------------------- inferenceconfig.json


@dataclass(frozen=True)
class InferenceConfig:
    """What inferenceconfig.json says, resolved against the repo."""

    path: Path
    entry_script: Path
    source_directory: Path | None
    environment_file: Path | None  # condaFile, or environment.python.condaDependenciesFile
    conda_dependencies: dict[str, Any] | None  # environment.python.condaDependencies, inline
    environment_name: str | None  # environment.name (a registered or curated environment, e.g. AzureML-Minimal)
    notes: tuple[str, ...] = ()

    def describe(self, root: Path) -> str:
        parts = [f"entryScript {_rel(self.entry_script, root)}"]
        if self.source_directory is not None:
            parts.append(f"sourceDirectory {_rel(self.source_directory, root)}")
        if self.environment_file is not None:
            parts.append(f"conda file {_rel(self.environment_file, root)}")
        elif self.conda_dependencies is not None:
            parts.append("conda dependencies inline (environment.python.condaDependencies)")
        elif self.environment_name:
            parts.append(f"environment {self.environment_name!r} (registered in the workspace)")
        return f"{self.path.name}: " + ", ".join(parts)


def _key(data: dict[str, Any], name: str) -> tuple[str | None, Any]:
    """(the key as written, its value) for a key matched without regard to case, as Azure ML's files vary
    (extraDockerfileSteps / extraDockerFileSteps)."""
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == name.lower():
            return key, value
    return None, None


def read_inference_config(path: Path, root: Path) -> InferenceConfig:
    """Read and check inferenceconfig.json (see the module docstring). Raises ConfigError naming the key."""
    root = root.resolve()
    what = path.name
    text = read_text(path, what=what, max_bytes=MAX_INFERENCE_CONFIG_BYTES, error=ConfigError)
    example = '{"entryScript": "score.py", "runtime": "python", "condaFile": "myenv.yml"}'
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"is not valid JSON: {e.msg} (column {e.colno})", file=path, line=e.lineno,
                          hint=f"{what} is the JSON file `az ml model deploy --ic` reads, e.g. {example}") from None
    except RecursionError:
        raise ConfigError("is not valid JSON: nested too deeply", file=path, hint=f"e.g. {example}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"must be a JSON object of settings, got {type(data).__name__}", file=path,
                          hint=f"e.g. {example}")

    def fail(key: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=path, field=key, line=_line(text, key), hint=hint)

    def string(key: str | None, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(key or "", f"must be a path (a string), got {json.dumps(value)}")
        return value.strip()

    notes: list[str] = []
    source_key, source_value = _key(data, "sourceDirectory")
    source_text = string(source_key, source_value)
    source_dir = None
    base = path.parent.resolve()
    if source_text is not None and source_key is not None:
        source_dir = (base / source_text).resolve()
        if not _inside(source_dir, root):
            raise fail(source_key, f"{source_text!r} points outside the model repo ({root})")
        if not source_dir.is_dir():
            raise fail(source_key, f"{source_text!r} does not exist or is not a folder",
                       hint="the folder whose files ship with the entry script (null: the entry script's folder)")

    def locate(key: str, value: str, *, is_dir: bool = False) -> Path:
        """A path inferenceconfig.json names: relative to sourceDirectory (as Azure ML reads it), else its folder."""
        bases = [b for b in (source_dir, base) if b is not None]
        tried = []
        for folder in bases:
            candidate = (folder / value).resolve()
            tried.append(candidate)
            if _inside(candidate, root) and (candidate.is_dir() if is_dir else candidate.is_file()):
                return candidate
        if all(not _inside(c, root) for c in tried):
            raise fail(key, f"{value!r} points outside the model repo ({root})")
        where = " or ".join(dict.fromkeys(_rel(c, root) for c in tried if _inside(c, root)))
        raise fail(key, f"{value!r} does not exist (looked for {where})",
                   hint="paths in inferenceconfig.json are relative to sourceDirectory when it is set, else to the "
                        "file's own folder")

    entry_key, entry_value = _key(data, "entryScript")
    if entry_key is None or entry_value is None:
        raise ConfigError("is missing: it names the entry script, the one defining init() and run()", file=path,
                          field="entryScript", hint='add "entryScript": "score.py" (the path of your entry script)')
    entry_text = string(entry_key, entry_value)
    assert entry_text is not None
    if not entry_text.endswith(".py"):
        raise fail(entry_key, f"{entry_text!r} is not a Python file: the entry script is imported as a module, so its "
                              "name ends in .py", hint='e.g. "entryScript": "score.py"')
    entry = locate(entry_key, entry_text)
    if source_dir is not None and entry.parent != source_dir:
        notes.append(f"{entry_key} {_rel(entry, root)} is not directly in sourceDirectory "
                     f"{_rel(source_dir, root)}: modelfunc ships the entry script's own folder, "
                     f"{_rel(entry.parent, root)}")

    runtime_key, runtime = _key(data, "runtime")
    if runtime is not None and (not isinstance(runtime, str) or runtime.lower() != "python"):
        raise fail(runtime_key or "runtime", f"{json.dumps(runtime)} is not a runtime an Azure Functions app has: "
                                             "its functions run on Python", hint='use "runtime": "python" (or leave '
                                                                                 'it out)')

    env_file = None
    conda_key, conda_value = _key(data, "condaFile")
    conda_text = string(conda_key, conda_value)
    if conda_text is not None and conda_key is not None:
        env_file = locate(conda_key, conda_text)

    inline = None
    env_name = None
    env_key, environment = _key(data, "environment")
    if environment is not None:
        if not isinstance(environment, dict):
            raise fail(env_key or "environment", f"must be an Azure ML environment (a JSON object), got "
                                                 f"{type(environment).__name__}",
                       hint='e.g. "environment": {"python": {"condaDependencies": {"dependencies": [...]}}}')
        if env_file is not None:
            notes.append(f"{conda_key} is ignored: {env_key} is set, and Azure ML uses the environment then")
            env_file = None
        _, name = _key(environment, "name")
        env_name = name if isinstance(name, str) else None
        _, python = _key(environment, "python")
        python = python if isinstance(python, dict) else {}
        file_key, deps_file = _key(python, "condaDependenciesFile")
        deps_key, deps = _key(python, "condaDependencies")
        _, user_managed = _key(python, "userManagedDependencies")
        if isinstance(deps_file, str) and deps_file.strip() and file_key is not None:
            env_file = locate(file_key, deps_file.strip())
        elif deps is not None:
            if not isinstance(deps, dict) or not isinstance(deps.get("dependencies"), list):
                raise fail(deps_key or "condaDependencies", "must be a conda environment: an object with a "
                                                            "\"dependencies\" list",
                           hint='e.g. {"dependencies": ["python=3.11", {"pip": ["azureml-defaults"]}]}')
            inline = deps
        if user_managed is True:
            notes.append("environment.python.userManagedDependencies is true: Azure ML installed nothing; modelfunc "
                         "installs the app's requirements from environment.yml or requirements.txt")
        _, variables = _key(environment, "environmentVariables")
        if isinstance(variables, dict) and variables:
            notes.append(f"environment.environmentVariables ({', '.join(sorted(map(str, variables)))}) are not "
                         "set by modelfunc: make them app settings of the function app")

    for key, value in data.items():
        lowered = str(key).lower()
        if lowered in NOT_USED and value not in (None, False, "", [], {}) and NOT_USED[lowered]:
            notes.append(f"{key} is not used: {NOT_USED[lowered]}")
        elif lowered not in KNOWN:
            notes.append(f"{key} is not an inferenceconfig.json key modelfunc knows: not read")
    return InferenceConfig(path.resolve(), entry, source_dir, env_file, inline, env_name, tuple(notes))


# ------------------------------------------------------------------------------------------- what the repo holds


@dataclass(frozen=True)
class PythonPin:
    """A conda file's ``python=`` line."""

    version: str  # as written: 3.6.2
    file: Path
    line: int | None
    field: str  # dependencies[0]

    @property
    def minor(self) -> str:
        m = re.match(r"\d+\.\d+", self.version)
        return m.group() if m else self.version

    @property
    def supported(self) -> bool:
        return self.minor in SUPPORTED_PYTHON

    @property
    def nearest(self) -> str:
        return nearest_python(self.minor)

    def where(self, root: Path) -> str:
        return f"{_rel(self.file, root)}{f':{self.line}' if self.line else ''}"


def python_pin(env_file: Path) -> PythonPin | None:
    """The exact python version a conda file pins (``python=3.6.2``, ``python==3.7``, ``python 3.8``), if any."""
    if env_file.suffix.lower() not in (".yml", ".yaml"):
        return None
    data, lines = load_yaml(env_file, what=env_file.name)
    deps = data.get("dependencies") if isinstance(data, dict) else None
    for i, dep in enumerate(deps if isinstance(deps, list) else []):
        if not isinstance(dep, str):
            continue
        m = re.fullmatch(r"\s*(?:[\w.-]+::)?python\s*(?:==?|\s)\s*(\d+(?:\.\d+)*)(?:[.=*].*)?\s*", dep)
        if m:
            return PythonPin(m.group(1), env_file.resolve(), lines.get(("dependencies", str(i))), f"dependencies[{i}]")
    return None


def asked_model_names(entry_script: Path) -> list[str]:
    """The names score.py asks ``Model.get_model_path(...)`` for, when written as plain strings."""
    try:
        tree = ast.parse(entry_script.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return []
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if called != "get_model_path":
            continue
        args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "model_name")]
        names += [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return list(dict.fromkeys(names))


def _conda_files(root: Path) -> list[Path]:
    """The conda environment files at the repo root (YAML with a dependencies list), e.g. myenv.yml."""
    found = []
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in (".yml", ".yaml") or not path.is_file() or path.name == CONFIG_FILE:
            continue
        try:
            data, _ = load_yaml(path, what=path.name)
        except ModelfuncError:
            continue
        if isinstance(data, dict) and isinstance(data.get("dependencies"), list):
            found.append(path.resolve())
    return found


def _model_layout(root: Path, entry: Path, *, notes: list[str]) -> tuple[str | None, list[str] | None, list[str]]:
    """(model_dir, model_files, names score.py asks for that are nowhere): a model/ folder when there is one,
    else the model files beside score.py (by their names, and the names score.py gives Model.get_model_path)."""
    if (root / "model").is_dir() and not _inside(entry, (root / "model").resolve()):
        return "model", None, []
    folders = list(dict.fromkeys([root, entry.parent]))
    files = [p.resolve() for folder in folders for p in find_model_files(folder)]
    missing = []
    for name in asked_model_names(entry):
        hits = [(folder / name).resolve() for folder in folders if (folder / name).exists()]
        if hits and _inside(hits[0], root):
            if hits[0] not in files:
                files.append(hits[0])
                if not is_model_file(name):
                    notes.append(f"{name} is a model file: {_rel(entry, root)} asks Model.get_model_path for it")
        else:
            missing.append(name)
    return None, [_rel(p, root) for p in dict.fromkeys(files)], missing


@dataclass
class Survey:
    """What ``modelfunc init`` found in the repo."""

    root: Path
    inference: InferenceConfig | None
    entry_script: Path
    environment: Path | None  # the conda file / requirements.txt modelfunc.yaml names (None: write ENVIRONMENT_OUT)
    write_environment: dict[str, Any] | None  # inline condaDependencies, to write as ENVIRONMENT_OUT
    pin: PythonPin | None
    model_dir: str | None
    model_files: list[str] | None
    missing_models: list[str]
    sample: Path | None  # samples/input.* already there
    notes: list[str] = field(default_factory=list)

    def found(self) -> list[str]:
        """What was found, one line each, as init prints it."""
        root = self.root
        lines = [self.inference.describe(root) if self.inference else
                 f"no inferenceconfig.json: entry script {_rel(self.entry_script, root)}"]
        if self.environment is not None:
            lines.append(f"environment: {_rel(self.environment, root)}")
        elif self.write_environment is not None:
            lines.append(f"environment: given inline in {self.inference.path.name if self.inference else '?'}; "
                         f"written to {ENVIRONMENT_OUT}")
        if self.pin is not None:
            lines.append(f"python pin: {self.pin.where(root)} {self.pin.field}: python={self.pin.version}"
                         + ("" if self.pin.supported else f" (no Azure Functions image runs Python {self.pin.minor}; "
                                                          f"they run {', '.join(SUPPORTED_PYTHON)})"))
        if self.model_dir:
            lines.append(f"model: the folder {self.model_dir}/")
        elif self.model_files:
            lines.append(f"model files: {', '.join(self.model_files)}")
        else:
            lines.append("model files: none found (named *.pkl, *.joblib, *.onnx, *.pt, *.h5, *.pb ... or asked "
                         "for by Model.get_model_path)")
        for name in self.missing_models:
            lines.append(f"WARNING: {_rel(self.entry_script, root)} asks Model.get_model_path({name!r}), which is not "
                         "in the repo: download the registered model beside it (az ml model download) and run "
                         "init again, or add it to model_files")
        if self.sample is not None:
            lines.append(f"sample input: {_rel(self.sample, root)}")
        return lines + [f"note: {n}" for n in self.notes]


def survey(root: Path, *, inference_config: Path | None = None, environment: Path | None = None) -> Survey:
    """Look at the repo as ``modelfunc init`` does (see :class:`Survey`). Raises ConfigError / OptionError."""
    root = root.resolve()
    path = (root / inference_config) if inference_config is not None else find_inference_config(root)
    if inference_config is not None and not path.is_file():  # type: ignore[union-attr]
        raise OptionError(f"{str(inference_config)!r} does not exist", field="--inference-config")
    notes: list[str] = []
    inference = read_inference_config(path, root) if path is not None else None
    if inference is not None:
        notes.extend(inference.notes)
        entry = inference.entry_script
    else:
        entry = root / "score.py"
        if not entry.is_file():
            raise ConfigError(f"holds no {INFERENCE_CONFIG_NAMES[0]} and no score.py: nothing to read the project "
                              "from", file=root,
                              hint="run init in the Azure ML project (the folder with inferenceconfig.json), or "
                                   "scaffold a new repo: cookiecutter <modelfunc>/template")
        entry = entry.resolve()
    env_file, inline = (inference.environment_file, inference.conda_dependencies) if inference else (None, None)
    if environment is not None:
        env_file, inline = (root / environment).resolve(), None
        if not env_file.is_file() or not _inside(env_file, root):
            raise OptionError(f"{str(environment)!r} is not a file in the repo", field="--environment")
    if env_file is None and inline is None:
        named = [root / n for n in ("environment.yml", "environment.yaml", "requirements.txt") if (root / n).is_file()]
        conda = _conda_files(root)
        if named:
            env_file = named[0].resolve()
        elif len(conda) == 1:
            env_file = conda[0]
        elif len(conda) > 1:
            raise OptionError(f"the repo holds {len(conda)} conda files ({', '.join(p.name for p in conda)}) and "
                              "inferenceconfig.json names none", field="--environment",
                              hint="name the one the model runs with: --environment myenv.yml")
        else:
            raise ConfigError("holds no conda file (inferenceconfig.json condaFile), environment.yml or "
                              "requirements.txt", file=root,
                              hint="add the conda file the model was deployed with (e.g. myenv.yml), or a "
                                   "requirements.txt listing what score.py imports")
    if inline is not None and (root / ENVIRONMENT_OUT).exists():
        raise ConfigError(f"{inference.path.name if inference else ''} gives its conda dependencies inline, and "
                          f"{ENVIRONMENT_OUT}, where init would write them, exists already",
                          file=root / ENVIRONMENT_OUT,
                          hint=f"name the file to use instead: --environment {ENVIRONMENT_OUT}")
    pin = python_pin(env_file) if env_file is not None else None
    if inline is not None:
        pin = _inline_pin(inline, inference)
    model_dir, model_files, missing = _model_layout(root, entry, notes=notes)
    samples = root / "samples"
    sample = next((p.resolve() for p in sorted(samples.glob("input.*")) if p.is_file()), None) \
        if samples.is_dir() else None
    return Survey(root, inference, entry, env_file, inline, pin, model_dir, model_files, missing, sample, notes)


def _inline_pin(deps: dict[str, Any], inference: InferenceConfig | None) -> PythonPin | None:
    for i, dep in enumerate(deps.get("dependencies") or []):
        m = re.fullmatch(r"\s*python\s*(?:==?|\s)\s*(\d+(?:\.\d+)*)\S*\s*", dep) if isinstance(dep, str) else None
        if m and inference is not None:
            return PythonPin(m.group(1), inference.path, None,
                             f"environment.python.condaDependencies.dependencies[{i}]")
    return None


# ------------------------------------------------------------------------------------------- modelfunc init


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
    if not APP_NAME_RE.match(name):
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
        sample_rel = _rel(found.sample, root)
    sample_rel = sample_rel or "samples/input.json"
    env_rel = _rel(found.environment, root) if found.environment is not None else ENVIRONMENT_OUT
    data: dict[str, Any] = {"name": name, "entry_script": _rel(found.entry_script, root), "environment": env_rel,
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


# ------------------------------------------------------------------------------------------- without modelfunc.yaml


def config_from_inference(root: Path, path: Path) -> tuple[dict[str, Any], list[str]]:
    """modelfunc.yaml's settings for a repo that has only inferenceconfig.json: its entry script and environment,
    the model as init would find it, the HTTP trigger (Azure ML deploys a web service) and the default samples."""
    root = root.resolve()
    inference = read_inference_config(path, root)
    notes = list(inference.notes)
    if inference.environment_file is None and inference.conda_dependencies is not None:
        raise ConfigError(f"gives the conda dependencies inline (environment.python.condaDependencies), and there is "
                          f"no {CONFIG_FILE} naming a file to read them from", file=path, field="environment",
                          line=_line(read_text(path, what=path.name, max_bytes=MAX_INFERENCE_CONFIG_BYTES),
                                     "condaDependencies"),
                          hint=f"run `modelfunc init`: it writes them to {ENVIRONMENT_OUT} and writes {CONFIG_FILE}")
    model_dir, model_files, missing = _model_layout(root, inference.entry_script, notes=notes)
    data: dict[str, Any] = {"entry_script": _rel(inference.entry_script, root), "trigger": "http"}
    if inference.environment_file is not None:
        data["environment"] = _rel(inference.environment_file, root)
        pin = python_pin(inference.environment_file)
        if pin is not None and pin.supported:
            data["python_version"] = pin.minor
    if model_files is not None:
        data["model_files"] = model_files
    what = ", ".join(filter(None, [
        f"entry script {data['entry_script']}",
        f"environment {data['environment']}" if "environment" in data else None,
        f"model files {', '.join(model_files)}" if model_files else "no model files found" if not model_dir else
        f"model {model_dir}/"]))
    summary = (f"no {CONFIG_FILE}: read {path.name} ({what}); trigger http (as Azure ML deploys it: a web service). "
               f"`modelfunc init` writes {CONFIG_FILE} to choose the trigger and the rest")
    for name in missing:
        notes.append(f"{data['entry_script']} asks Model.get_model_path({name!r}), which is not in the repo")
    return data, [summary, *notes]


# ------------------------------------------------------------------------------------------- modelfunc sample record


def score_sample(project: Project, *, timeout: float, progress: Progress, output: Progress | None = None) -> Any:
    """run()'s answer to the sample (a golden.Answer): the app rendered into a scratch folder (the repo gets
    nothing), run in its own environment by the runtime's self-test, as `modelfunc up` scores it directly."""
    from . import appenv, local
    from .appgen import render

    with tempfile.TemporaryDirectory(prefix="modelfunc-sample-") as tmp:
        # The expected output is what this makes: the app's OpenAPI description reads the input in its place.
        rendering = replace(project, sample_expected=project.sample_input) if not project.sample_expected.is_file() \
            else project
        result = render(rendering, Path(tmp) / "build", progress=progress)
        _, env = appenv.for_app(result.app_dir, python_version=project.config.python_version, progress=progress)
        progress("==> score the sample with run() called directly")
        return local.direct_answer(project, result.app_dir, timeout=timeout, output=output or progress,
                                   python=env.python)


def shown_answer(body: bytes) -> str:
    """The answer as it will be written: indented JSON when it is JSON, else its text (or its size)."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, ValueError, RecursionError):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return f"({len(body)} bytes of binary data)"


def expected_bytes(project: Project, body: bytes) -> bytes:
    """What samples.expected gets: a .json file the answer as indented JSON (compared as JSON, within the
    tolerance), any other file the answer's bytes as they are (compared byte for byte)."""
    if project.sample_expected.suffix.lower() == ".json":
        try:
            return (json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ConfigError(f"is a .json file, and run()'s answer to the sample is not JSON: {body[:80]!r}",
                              file=project.sample_expected,
                              hint="name the expected output with another extension in modelfunc.yaml (samples."
                                   "expected: samples/expected.txt): it is then compared byte for byte") from None
    return body


def write_expected(project: Project, data: bytes) -> None:
    write_atomically(project.sample_expected, data, replace_existing=True)
