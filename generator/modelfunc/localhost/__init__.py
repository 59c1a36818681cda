"""The local host: runs a rendered Functions app the way the Azure Functions host does.

* functions come from the azure-functions library's own indexing (``FunctionApp.get_functions()``);
* HTTP triggers are served at ``/api/<route>`` by a real HTTP server (uvicorn);
* blob triggers listen to their container in Azurite or any storage account, write outputs by the
  output bindings' paths and keep blob receipts (as the real host does, in ``azure-webjobs-hosts``)
  so a restart never scores an old blob again;
* any non-HTTP function can be invoked with ``POST /admin/functions/<name>`` (as on the real host's
  admin API), which is how a Service Bus function is exercised offline;
* ``GET /admin/host/status`` is the readiness probe.

Importing the package imports none of it: ``HostServer``, ``LoadedApp`` and ``load_app`` are loaded when first used
(PEP 562), so that a process which needs one light module of it (``appsettings``: ``modelfunc serve`` checks the
settings before it starts the host) does not import uvicorn, azure-functions and the storage SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loader import LoadedApp, load_app
    from .server import HostServer

__all__ = ["HostServer", "LoadedApp", "load_app"]
_WHERE = {"HostServer": "server", "LoadedApp": "loader", "load_app": "loader"}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whichever of the three is asked for
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
