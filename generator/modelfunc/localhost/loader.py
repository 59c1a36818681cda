"""Import a Functions app (v2 programming model) and index it with azure-functions itself."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

from ..errors import HostError


@dataclass(frozen=True)
class Binding:
    name: str
    type: str
    direction: str
    data: dict[str, Any]


@dataclass(frozen=True)
class LoadedFunction:
    name: str
    trigger: Binding
    outputs: tuple[Binding, ...]
    user_function: Callable[..., Any]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trigger": {"type": self.trigger.type, **_plain(self.trigger.data)},
            "outputs": [{"type": o.type, **_plain(o.data)} for o in self.outputs],
        }


@dataclass
class LoadedApp:
    path: Path
    module: Any
    functions: dict[str, LoadedFunction]
    settings: dict[str, str]

    def storage_connections(self) -> set[str]:
        """The app setting names the storage bindings of blob-triggered functions (trigger and outputs) read.

        A queue-triggered function's blob output (its answer's stamp) is written only in Azure: this host
        invokes such functions through its admin API and returns their queue outputs."""
        names = set()
        for f in self.functions.values():
            if f.trigger.type != "blobTrigger":
                continue
            for b in (f.trigger, *f.outputs):
                if b.type in ("blobTrigger", "blob"):
                    names.add(b.data.get("connection") or "AzureWebJobsStorage")
        return names

    def apply_settings(self, values: dict[str, str]) -> None:
        """Set app settings (visible to the host and, as environment variables, to the app's code)."""
        self.settings.update(values)
        os.environ.update(values)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the app's entry script has initialised (when it has one, as modelfunc apps do)."""
        entry = getattr(self.module, "entry", None)
        if entry is not None and hasattr(entry, "wait_ready"):
            try:
                entry.wait_ready(timeout) if timeout is not None else entry.wait_ready()
            except Exception as e:  # noqa: BLE001 - the runtime's own error, reported as a host error
                raise HostError(f"the app failed to start: {e}") from None


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in data.items():
        if k in ("type", "name", "direction"):
            continue
        out[k] = json.loads(json.dumps(v, default=lambda x: getattr(x, "value", str(x))))
    return out


def _binding(raw: str) -> Binding:
    data = json.loads(raw)
    return Binding(data["name"], data["type"], data["direction"].upper(), data)


def read_local_settings(app_dir: Path) -> dict[str, str]:
    path = app_dir / "local.settings.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (json.JSONDecodeError, AttributeError) as e:
        raise HostError(f"{path} is not valid JSON: {e}") from None
    return {str(k): str(v) for k, v in values.items()}


def load_app(app_dir: str | Path, *, settings: dict[str, str] | None = None) -> LoadedApp:
    """Import ``function_app.py`` from ``app_dir`` and index its functions.

    App settings come from, lowest first: local.settings.json, the process environment, ``settings``;
    they are applied to ``os.environ`` as the Functions host does for the worker.
    """
    app_dir = Path(app_dir).resolve()
    script = app_dir / "function_app.py"
    if not script.is_file():
        raise HostError(f"{app_dir} has no function_app.py",
                        hint="point at a model repo (with modelfunc.yaml) or at the app `modelfunc package` wrote")
    merged = {**read_local_settings(app_dir), **{k: v for k, v in os.environ.items()}, **(settings or {})}
    for k, v in merged.items():
        os.environ[k] = v
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    spec = importlib.util.spec_from_file_location("function_app", script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["function_app"] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as e:  # noqa: BLE001 - user code at import
        raise HostError(f"importing {script} failed: {type(e).__name__}: {e}") from None
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        raise HostError(f"{script} defines no azure.functions.FunctionApp")
    functions: dict[str, LoadedFunction] = {}
    for fa in apps:
        for f in fa.get_functions():
            bindings = [_binding(raw) for raw in f.get_raw_bindings()]
            trigger = next(b for b in bindings if b.type.endswith("Trigger"))
            outputs = tuple(b for b in bindings if b.direction == "OUT" and b.name != "$return")
            functions[f.get_function_name()] = LoadedFunction(
                f.get_function_name(), trigger, outputs, f.get_user_function())
    if not functions:
        raise HostError(f"{script} defines no functions")
    return LoadedApp(app_dir, module, functions, {k: merged[k] for k in merged})
