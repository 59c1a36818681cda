"""How a process of the local host starts in the app's Python: the one piece of code that both ``appenv`` (which
starts the host) and ``localhost/workers.py`` (which starts its worker processes) run. A leaf: it imports nothing,
so the host's process may use it (docs/architecture.md).

BOOT, run by the app's Python with ``-c``: modelfunc's finder for the host's own imports (localhost/isolation.py,
loaded by path so that nothing of modelfunc is imported before it is in place), then the host. The working
directory is not on sys.path (as with -P): the loader puts the app's folder there, and nothing else.
"""

HOST_PATH_ENV = "MODELFUNC_HOST_PATH"  # modelfunc's own import paths, for the local host's code only

BOOT = f"""\
import importlib.util, os, sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
paths = os.environ.pop({HOST_PATH_ENV!r}).split(os.pathsep)
spec = importlib.util.spec_from_file_location(
    "modelfunc.localhost.isolation", os.path.join(paths[0], "modelfunc", "localhost", "isolation.py"))
isolation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(isolation)
isolation.install(paths)
sys.modules[spec.name] = isolation
from modelfunc.localhost.__main__ import main
sys.exit(main(sys.argv[1:]))
"""
