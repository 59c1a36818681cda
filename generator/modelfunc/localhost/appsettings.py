"""The app's settings as the host reads them before anything else: ``local.settings.json`` and the admin API's
master key. A leaf of the local host (json and the standard library only), so that ``modelfunc serve`` checks them
before it starts the host without importing the host itself (uvicorn, starlette, azure-functions, the storage SDK:
half a second of a CPU at every start).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from ..errors import HostError

MASTER_KEY_SETTING = "MODELFUNC_MASTER_KEY"
# Set beside MASTER_KEY_SETTING by whoever generated the key for this run (`modelfunc serve`, which masks it in a
# workflow's log first): the host's banner shows it, once.
MASTER_KEY_GENERATED_SETTING = "MODELFUNC_MASTER_KEY_GENERATED"
LOCAL_ONLY_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})  # where the admin API is open without a key


LOCAL_SETTINGS = "local.settings.json"
MAX_LOCAL_SETTINGS_BYTES = 1024 * 1024
LOCAL_SETTINGS_EXAMPLE = '{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "python"}}'


def read_local_settings(app_dir: Path) -> dict[str, str]:
    """The app settings of ``local.settings.json`` (its ``Values``), as Core Tools reads them: a JSON object whose
    ``Values`` maps names to strings (numbers and booleans are taken as their text). Anything else is a HostError
    naming the file and what is wrong, never a traceback."""
    path = app_dir / LOCAL_SETTINGS
    if not path.exists():
        return {}
    hint = f"fix it or remove it (modelfunc package writes one); the smallest valid file is {LOCAL_SETTINGS_EXAMPLE}"
    if not path.is_file():
        raise HostError("is not a regular file", file=path, hint=hint)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_LOCAL_SETTINGS_BYTES + 1)
    except OSError as e:
        raise HostError(f"cannot be read: {e.strerror}", file=path) from None
    if len(raw) > MAX_LOCAL_SETTINGS_BYTES:
        raise HostError(f"is larger than {MAX_LOCAL_SETTINGS_BYTES // 1024} KiB: not a settings file", file=path,
                        hint=hint)
    try:
        text = raw.decode("utf-8-sig")  # Core Tools (.NET) reads it with or without a byte-order mark
    except UnicodeDecodeError as e:
        raise HostError(f"is not UTF-8 text ({e.reason} at byte {e.start})", file=path, hint=hint) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise HostError(f"is not valid JSON: {e.msg}", file=path, line=e.lineno, hint=hint) from None
    except RecursionError:
        raise HostError("is not valid JSON: nested too deeply", file=path, hint=hint) from None
    if not isinstance(data, dict):
        raise HostError(f"must be a JSON object with a \"Values\" object, got {_json_kind(data)}", file=path,
                        hint=hint)
    values = data.get("Values", {})
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise HostError(f"\"Values\" must be an object of app settings (name: value), got {_json_kind(values)}",
                        file=path, hint=hint)
    settings = {}
    for name, value in values.items():
        if isinstance(value, (bool, int, float)):
            value = str(value)  # as before, and as .NET reads them: True, 3, 0.5
        if not isinstance(value, str):
            raise HostError(f"Values.{name}: an app setting is a string, got {_json_kind(value)}", file=path,
                            hint=f'write it as text, e.g. "{name}": "..."')
        if not name or "\0" in name or "=" in name or "\0" in value:
            raise HostError(f"Values: {name!r} is not an app setting name (or its value holds a NUL character)",
                            file=path, hint="use letters, digits and underscores, e.g. MY_SETTING")
        settings[name] = value
    return settings


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def choose_master_key(settings: dict[str, str], host: str) -> tuple[str | None, str | None]:
    """The admin API's master key and where it came from (``"setting"`` or ``"generated"``): the app setting when
    one is set, else a new key when the host is reachable from elsewhere, else none (open: ``(None, None)``)."""
    key = (settings.get(MASTER_KEY_SETTING) or "").strip() or None
    if key is not None:
        return key, "generated" if settings.get(MASTER_KEY_GENERATED_SETTING) == "1" else "setting"
    if local_only(host):
        return None, None
    import secrets

    return secrets.token_urlsafe(32), "generated"


def local_only(host: str) -> bool:
    """Whether the host listens where only this machine reaches it: 127.0.0.1, ::1 or localhost. Any other address,
    another 127.x alias included, counts as reachable from elsewhere (a container's published port, a tunnel)."""
    host = host.strip().lower()
    if host in LOCAL_ONLY_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host) in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    except ValueError:
        return False
