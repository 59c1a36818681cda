"""The Azure CLI's own entry point, run for one command after another in one process (the azure-cli venv's
Python, never modelfunc's)::

    .venv-az/bin/python tests/support/azcli_session.py

Each line on stdin is a JSON list of arguments (``["group", "create", "-n", "rg", ...]``, as after ``az``); for
each, the process does what ``python -m azure.cli`` (azure/cli/__main__.py) does: a fresh ``get_default_cli()``
(it reads AZURE_CONFIG_DIR again: the active cloud, the signed-in account, the token cache) and its ``invoke``,
with ``sys.argv`` set as ``az`` sets it. What the command writes to file descriptors 1 and 2 is captured (at the
descriptor, so nothing a command prints is lost or mixed up) and answered as one JSON line,
``{"exit": N, "stdout": "...", "stderr": "..."}``, on the descriptor stdout had when the process started. Stdin
is /dev/null for the commands (no prompt, as with ``stdin=DEVNULL``): the requests come on a copy of it.

The requests a command sends are the CLI's own (same command modules, same SDK clients, same pipeline): only
the interpreter's start-up and the command table's loading, about 1.5 s a command on the test machine, are paid
once (tests/support/azcli.py, used by tests/azure/test_azure_parity.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile


def _reset_logging() -> None:
    """knack configures logging once per process (it returns early when the root logger has handlers): undo it,
    so that each command's flags (``--only-show-errors``, ``--debug``) apply to that command, as in a new ``az``."""
    for name in (None, "cli", "az_command_data_logger"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


def run(args: list[str]) -> int:
    from azure.cli.core import get_default_cli, telemetry
    from knack.completion import ARGCOMPLETE_ENV_NAME

    _reset_logging()
    sys.argv = [sys.argv[0], *args]
    cli = get_default_cli()
    telemetry.set_application(cli, ARGCOMPLETE_ENV_NAME)
    try:
        code = cli.invoke(args)
    except SystemExit as e:  # as azure/cli/__main__.py: some code calls sys.exit
        code = e.code if isinstance(e.code, int) else 1
    return 0 if code is None else int(code)


def main() -> int:
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for line in requests:
        if not line.strip():
            continue
        args = json.loads(line)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                code = run(args)
            except BaseException as e:  # noqa: BLE001 - reported as the command's failure, the session goes on
                print(f"azcli_session: {type(e).__name__}: {e}", file=sys.stderr)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            texts = []
            for captured in (out, err):
                captured.seek(0)
                texts.append(captured.read().decode("utf-8", errors="replace"))
        answers.write(json.dumps({"exit": code, "stdout": texts[0], "stderr": texts[1]}) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
