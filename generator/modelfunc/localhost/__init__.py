"""The local host: runs a rendered Functions app the way the Azure Functions host does.

* functions come from the azure-functions library's own indexing (``FunctionApp.get_functions()``);
* HTTP triggers are served at ``/api/<route>`` by a real HTTP server (uvicorn);
* blob triggers listen to their container in Azurite or any storage account, write outputs by the
  output bindings' paths and keep blob receipts (as the real host does, in ``azure-webjobs-hosts``)
  so a restart never scores an old blob again;
* any non-HTTP function can be invoked with ``POST /admin/functions/<name>`` (as on the real host's
  admin API), which is how a Service Bus function is exercised offline;
* ``GET /admin/host/status`` is the readiness probe.
"""

from .loader import LoadedApp, load_app
from .server import HostServer

__all__ = ["HostServer", "LoadedApp", "load_app"]
