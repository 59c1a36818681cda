"""The local host's own process: ``modelfunc serve`` starts it with the app's Python (``appenv.host_command``).

It imports only what the host needs (no click, no pydantic, no YAML): in this process the app's locked packages
come first, so the fewer of modelfunc's dependencies it shares with the app the fewer can be shadowed; those it
does share are checked against modelfunc's own requirements before the app is loaded (:func:`check_shadowed`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

HOST_DISTRIBUTIONS = ("uvicorn", "starlette", "anyio", "httpx", "azure-storage-blob", "azure-core", "azure-functions")


def check_shadowed(host_paths: list[str], names: tuple[str, ...] = HOST_DISTRIBUTIONS) -> None:
    """The host's own libraries, where the app's environment provides an older one than modelfunc needs, are a
    clear error naming the package (the app's version would otherwise break the host in some odd place)."""
    from importlib.metadata import PackageNotFoundError, distribution, distributions

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from ..errors import HostError

    own = next(iter(distributions(name="modelfunc", path=host_paths)), None)  # not on the app's sys.path
    wanted = {canonicalize_name(r.name): r for r in map(Requirement, (own.requires if own else None) or [])
              if r.marker is None}
    for name in names:
        need = wanted.get(canonicalize_name(name))
        try:
            found = distribution(name)
        except PackageNotFoundError:
            continue
        if need is not None and not need.specifier.contains(found.version, prereleases=True):
            raise HostError(f"the app's environment has {name} {found.version} (from its requirements), but the "
                            f"local host needs {need}: the app's packages come first in its process, as in the "
                            "Functions worker", hint=f"let {name} be {need.specifier} in the app's requirements, "
                            "or leave it out of them")


def _settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --setting {pair!r} is not NAME=VALUE")
        out[key] = value
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="modelfunc-host", description="The local host for one app folder.")
    parser.add_argument("app_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--setting", action="append", default=[])
    parser.add_argument("--azurite", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--poll-interval", type=float, default=0.2)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--max-body-size", type=int)
    parser.add_argument("--workers", type=int, help="worker processes sharing the port  [default: the app setting "
                        "FUNCTIONS_WORKER_PROCESS_COUNT, else 1]")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of them: see workers.py
    parser.add_argument("-v", "--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    from .. import AZURITE_LOG_ENV, CONNECTION_ENV
    from ..errors import ModelfuncError
    from .isolation import FINDER

    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose + 1, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        from .workers import read_role

        role = read_role() if args.worker else None
        if role is None:
            count = _worker_count(args)
            if count > 1:
                return _supervise(args, count)
        if FINDER is not None:
            check_shadowed(FINDER.host_paths)
        from . import HostServer, load_app

        if FINDER is not None:
            FINDER.add_app_path(str(args.app_dir.resolve()))
        loaded = load_app(args.app_dir, settings=_settings(args.setting))
        connection_string = os.environ.get(CONNECTION_ENV)
        storage_log = (os.environ.get(AZURITE_LOG_ENV) or None) if connection_string else None
        names = loaded.storage_connections()
        with contextlib.ExitStack() as stack:
            if names and not connection_string and (role is None or role.primary):
                dev = {"", "usedevelopmentstorage=true"}
                configured = any(loaded.settings.get(n, "").strip().lower() not in dev for n in names)
                if args.azurite == "on" or (args.azurite == "auto" and not configured):
                    from ..azurite import Azurite

                    emulator = stack.enter_context(Azurite())
                    connection_string, storage_log = emulator.connection_string, emulator.access_log
                    print(f"Started Azurite on 127.0.0.1:{emulator.port}; connection string for blob-test:\n"
                          f"  {connection_string}", file=sys.stderr, flush=True)
            if connection_string:
                loaded.apply_settings(dict.fromkeys(sorted(names | {"AzureWebJobsStorage"}), connection_string))
            server = HostServer(loaded, host=args.host, port=args.port, poll_interval=args.poll_interval,
                                max_body_bytes=args.max_body_size, role=role, storage_log=storage_log,
                                master_key=role.master_key if role is not None else None)
            if role is not None and role.key_generated:
                server.master_key_source = "generated"
            # uvicorn shuts down gracefully on SIGINT and SIGTERM, then re-raises the signal: make SIGTERM a
            # KeyboardInterrupt too, so that what this process started (the embedded Azurite) is stopped.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            try:
                server.run(ready_file=args.ready_file, log_level="info" if args.verbose > 1 else "warning")
            except KeyboardInterrupt:
                pass
    except ModelfuncError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _worker_count(args: argparse.Namespace) -> int:
    from .appsettings import read_local_settings
    from .workers import worker_count

    merged = {**read_local_settings(args.app_dir), **os.environ, **_settings(args.setting)}
    args.merged_settings = merged
    return worker_count(args.workers, merged)


def _supervise(args: argparse.Namespace, count: int) -> int:
    """Bind the port once, choose the master key once, and run ``count`` workers on them (workers.py)."""
    from .appsettings import choose_master_key
    from .limits import hostport, listen
    from .workers import Supervisor

    key, source = choose_master_key(args.merged_settings, args.host)
    generated = source == "generated"
    sock = listen(args.host, args.port)
    base_url = f"http://{hostport(args.host, sock.getsockname()[1])}"
    worker_argv = [str(args.app_dir), "--host", args.host, "--port", str(args.port), "--azurite", args.azurite,
                   "--poll-interval", repr(args.poll_interval), "--verbose", str(args.verbose)]
    worker_argv += [a for s in args.setting for a in ("--setting", s)]
    if args.max_body_size:
        worker_argv += ["--max-body-size", str(args.max_body_size)]
    return Supervisor(worker_argv, count, sock, base_url, ready_file=args.ready_file, master_key=key,
                      key_generated=generated).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
