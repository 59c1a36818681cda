"""Import a Functions app (v2 programming model) and index it with azure-functions itself."""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

from ..errors import HostError
from .appsettings import read_local_settings


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


# ------------------------------------------------------------------ importing the app, bounded

IMPORT_TIMEOUT_SETTING = "MODELFUNC_IMPORT_TIMEOUT"  # seconds; an app setting (or --setting)
DEFAULT_IMPORT_TIMEOUT = 120.0
LAST_RESORT_GRACE = 15.0  # after the timeout: if even the clean stop cannot run (stuck in C), dump stacks and exit


class _ImportTimedOut(BaseException):
    """Raised in the importing (main) thread by SIGALRM: a BaseException, so that user code's ``except Exception``
    does not swallow it."""

    def __init__(self, stack: str) -> None:
        super().__init__("the import did not finish in time")
        self.stack = stack


def import_timeout(settings: dict[str, str]) -> float:
    raw = (settings.get(IMPORT_TIMEOUT_SETTING) or "").strip()
    if not raw:
        return DEFAULT_IMPORT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise HostError(f"app setting {IMPORT_TIMEOUT_SETTING}={raw!r} is not a number of seconds > 0",
                        hint=f"e.g. {IMPORT_TIMEOUT_SETTING}=300 for an app whose imports take minutes")
    return value


def _stack_of(frame: Any) -> str:
    """The importing thread's stack, innermost last, without the machinery (importlib, this module) around it."""
    frames = [f for f in traceback.extract_stack(frame)
              if not f.filename.startswith("<frozen") and f.filename != __file__]
    return "".join(traceback.format_list(frames[-15:])).rstrip()


def _exec_bounded(spec: Any, module: Any, timeout: float) -> None:
    """Run the import, stopping it after ``timeout`` seconds with _ImportTimedOut (SIGALRM, main thread only).

    A blocking call (sleep, a lock, a socket read) is interrupted by the signal; a loop in Python is stopped at its
    next bytecode. Code stuck in C without releasing control gets the last resort: faulthandler prints every
    thread's stack and the process exits.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        spec.loader.exec_module(module)
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _ImportTimedOut(_stack_of(frame))

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    faulthandler.dump_traceback_later(timeout + LAST_RESORT_GRACE, exit=True)
    try:
        spec.loader.exec_module(module)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


def _timed_out(error: BaseException) -> _ImportTimedOut | None:
    """The timeout, when it is (or caused) the error: the runtime wraps what score.py's import raises."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, _ImportTimedOut):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return None


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
    timeout = import_timeout(merged)
    try:
        _exec_bounded(spec, module, timeout)
    except BaseException as e:  # noqa: BLE001 - user code at import (Ctrl+C included: that is not the app's error)
        stuck = _timed_out(e)
        if stuck is not None:
            raise HostError(
                f"importing {script} did not finish within {timeout:g} s: the app (score.py, or a module it imports) "
                f"is stuck at import, before init(); it is here (most recent call last):\n{stuck.stack}",
                hint=f"an import must not wait for anything (a server, a lock, input); load the model in init(). "
                     f"An app whose imports are slow can have more time: --setting {IMPORT_TIMEOUT_SETTING}=<seconds>"
            ) from None
        if not isinstance(e, Exception):
            raise
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
