"""A fork server: imports the heavy libraries once, then forks one child per server the suite starts.

    python zygote.py azmlinfsrv|modelfunc

reads one JSON command per line on stdin ({"argv", "cwd", "env", "log"}) and answers the forked child's pid. The child
is a new process group with the command's environment, working directory, argv and log file, and runs what the real
command runs: azmlinfsrv's own entry point (``azureml_inference_server_http.amlserver.run``, bound to 127.0.0.1), or
``modelfunc``'s CLI (``modelfunc.cli.main``, as ``python -m modelfunc`` does), or, for an argv whose first word is a
``.py`` file, that file as ``__main__`` (triggers.py: the blob and Service Bus paths, without a host). Only libraries
are imported before the fork (numpy, pandas, flask, gunicorn, ...): nothing that reads the environment or the entry
script at import, so each child loads its score.py, its configuration and the server's own modules itself, as a
freshly started process would.
Exited children are reaped by the kernel (SIGCHLD ignored); the suite watches them by pid.
"""

from __future__ import annotations

import json
import os
import signal
import sys

PRELOAD = {
    "azmlinfsrv": ["gunicorn.app.wsgiapp", "flask", "flask_cors", "werkzeug", "numpy", "pandas", "pydantic",
                   "pydantic_settings", "opentelemetry.sdk", "azure.monitor.opentelemetry.exporter",
                   "inference_schema.schema_decorators", "inference_schema.parameter_types.numpy_parameter_type",
                   "inference_schema.parameter_types.pandas_parameter_type",
                   "inference_schema.parameter_types.standard_py_parameter_type"],
    "modelfunc": ["modelfunc.cli", "modelfunc.localhost.server", "azure.functions", "uvicorn", "starlette",
                  "flask", "werkzeug", "numpy", "pandas", "inference_schema.schema_decorators",
                  "inference_schema.parameter_types.numpy_parameter_type",
                  "inference_schema.parameter_types.pandas_parameter_type",
                  "inference_schema.parameter_types.standard_py_parameter_type"],
}

AZMLINFSRV = """\
import sys
import azureml_inference_server_http.constants as constants
constants.DEFAULT_HOST = "127.0.0.1"
from azureml_inference_server_http.amlserver import run
sys.argv[0] = "azmlinfsrv"
run()
"""


def _child(kind: str, command: dict) -> None:
    os.setpgid(0, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    fd = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(command["cwd"])
    os.environ.clear()
    os.environ.update(command["env"])
    sys.argv = list(command["argv"])
    code = 0
    try:
        if kind == "azmlinfsrv":
            exec(compile(AZMLINFSRV, "<azmlinfsrv>", "exec"), {"__name__": "__main__"})
        elif sys.argv[0].endswith(".py"):
            import runpy

            runpy.run_path(sys.argv[0], run_name="__main__")
        else:
            from modelfunc.cli import main

            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child's failure goes to its log
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def main() -> None:
    kind = sys.argv[1]
    import importlib

    for name in PRELOAD[kind]:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    version = None
    if kind == "azmlinfsrv":
        from azureml_inference_server_http import __version__ as version
    print(json.dumps({"ready": kind, "version": version}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(kind, command)
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    main()
