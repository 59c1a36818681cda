"""inferenceconfig.json as Azure ML writes it: found in the repo, read and checked against it.

Its keys as Azure ML writes them (``entryScript``, ``sourceDirectory``, ``condaFile``, ``runtime``, ``environment``
with ``python.condaDependencies`` or ``python.condaDependenciesFile``; ``extraDockerfileSteps``, ``baseImage``,
``enableGpu``, ``schemaFile`` ... are not used by a Functions app, and said so). Paths are relative to
``sourceDirectory`` when it is set, as Azure ML has them, else to the file's folder. Every problem names the file,
the key and its line.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILE
from ..errors import ConfigError
from ..yamlload import read_text

# The names Azure ML's docs and samples give the file (`az ml model deploy --ic <file>` takes any name).
INFERENCE_CONFIG_NAMES = ("inferenceconfig.json", "inference_config.json", "inference-config.json")
MAX_INFERENCE_CONFIG_BYTES = 1024 * 1024
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


def key_line(text: str, key: str) -> int | None:
    """The line of ``"key":`` in a JSON text (the first one), for an error that points at it."""
    m = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text[: m.start()].count("\n") + 1 if m else None


def is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def relative(path: Path, root: Path) -> str:
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
        parts = [f"entryScript {relative(self.entry_script, root)}"]
        if self.source_directory is not None:
            parts.append(f"sourceDirectory {relative(self.source_directory, root)}")
        if self.environment_file is not None:
            parts.append(f"conda file {relative(self.environment_file, root)}")
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
        return ConfigError(message, file=path, field=key, line=key_line(text, key), hint=hint)

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
        if not is_inside(source_dir, root):
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
            if is_inside(candidate, root) and (candidate.is_dir() if is_dir else candidate.is_file()):
                return candidate
        if all(not is_inside(c, root) for c in tried):
            raise fail(key, f"{value!r} points outside the model repo ({root})")
        where = " or ".join(dict.fromkeys(relative(c, root) for c in tried if is_inside(c, root)))
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
        notes.append(f"{entry_key} {relative(entry, root)} is not directly in sourceDirectory "
                     f"{relative(source_dir, root)}: modelfunc ships the entry script's own folder, "
                     f"{relative(entry.parent, root)}")

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

