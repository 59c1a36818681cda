"""What an Azure ML v1 repo holds beside inferenceconfig.json: the conda file and its python pin, the model files
score.py loads. :func:`survey` is what ``modelfunc init`` reads; :func:`config_from_inference` the settings of a repo
without modelfunc.yaml.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILE, SUPPORTED_PYTHON, nearest_python
from ..errors import ConfigError, ModelfuncError, OptionError
from ..sourcedir import find_model_files, is_model_file
from ..yamlload import load_yaml, read_text
from .inferenceconfig import (
    INFERENCE_CONFIG_NAMES,
    MAX_INFERENCE_CONFIG_BYTES,
    InferenceConfig,
    find_inference_config,
    is_inside,
    key_line,
    read_inference_config,
    relative,
)

ENVIRONMENT_OUT = "environment.yml"  # where init writes an environment given inline in inferenceconfig.json


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
        return f"{relative(self.file, root)}{f':{self.line}' if self.line else ''}"


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
    if (root / "model").is_dir() and not is_inside(entry, (root / "model").resolve()):
        return "model", None, []
    folders = list(dict.fromkeys([root, entry.parent]))
    files = [p.resolve() for folder in folders for p in find_model_files(folder)]
    missing = []
    for name in asked_model_names(entry):
        hits = [(folder / name).resolve() for folder in folders if (folder / name).exists()]
        if hits and is_inside(hits[0], root):
            if hits[0] not in files:
                files.append(hits[0])
                if not is_model_file(name):
                    notes.append(f"{name} is a model file: {relative(entry, root)} asks Model.get_model_path for it")
        else:
            missing.append(name)
    return None, [relative(p, root) for p in dict.fromkeys(files)], missing


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
                 f"no inferenceconfig.json: entry script {relative(self.entry_script, root)}"]
        if self.environment is not None:
            lines.append(f"environment: {relative(self.environment, root)}")
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
            lines.append(f"WARNING: {relative(self.entry_script, root)} asks Model.get_model_path({name!r}), which is "
                         "not in the repo: download the registered model beside it (az ml model download) and run "
                         "init again, or add it to model_files")
        if self.sample is not None:
            lines.append(f"sample input: {relative(self.sample, root)}")
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
        if not env_file.is_file() or not is_inside(env_file, root):
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
                          line=key_line(read_text(path, what=path.name, max_bytes=MAX_INFERENCE_CONFIG_BYTES),
                                     "condaDependencies"),
                          hint=f"run `modelfunc init`: it writes them to {ENVIRONMENT_OUT} and writes {CONFIG_FILE}")
    model_dir, model_files, missing = _model_layout(root, inference.entry_script, notes=notes)
    data: dict[str, Any] = {"entry_script": relative(inference.entry_script, root), "trigger": "http"}
    if inference.environment_file is not None:
        data["environment"] = relative(inference.environment_file, root)
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

