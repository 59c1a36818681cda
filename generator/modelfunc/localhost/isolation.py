"""Keep the app to its own packages inside the local host's process.

The local host runs in the app's environment (``appenv.local_env``): the app's locked packages and the standard
library are on ``sys.path``, modelfunc's own packages are not. The host's code (modelfunc, uvicorn, starlette, the
Storage SDK ...) still needs those, so this finder, last on ``sys.meta_path``, serves them from modelfunc's paths —
but only to an import made by the host's code. An import made by the app (score.py, the runtime shim beside it, or
one of the app's locked packages) finds what the image would find, and a module the app's requirements do not
provide fails here as it would in Azure, instead of working locally by borrowing modelfunc's.

This file imports nothing of modelfunc: it is loaded by path before modelfunc itself is importable.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import sysconfig
import threading

_HERE = os.path.abspath(__file__)
_STDLIB = tuple(os.path.join(p, "") for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return path.startswith(roots)


class HostOnlyFinder:
    """Finds modules on modelfunc's paths for the host's code only (see the module docstring)."""

    def __init__(self, host_paths: list[str], app_paths: list[str]) -> None:
        self.host_paths = [os.path.abspath(p) for p in host_paths]
        self.host_roots = tuple(os.path.join(p, "") for p in self.host_paths)
        self.app_roots = tuple(os.path.join(os.path.abspath(p), "") for p in app_paths)
        self.refused: list[tuple[str, str]] = []  # (module, the app file that asked): for the host's messages
        self._lock = threading.Lock()

    def add_app_path(self, path: str) -> None:
        with self._lock:
            self.app_roots = (*self.app_roots, os.path.join(os.path.abspath(path), ""))

    def _importer(self) -> str | None:
        """The file of the code that asked for the import: the import machinery, importlib and the standard
        library are looked through (``pickle`` or ``importlib.import_module`` import on their caller's behalf)."""
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if not (name.startswith("<frozen") or name == _HERE or _under(name, _STDLIB)):
                return name
            frame = frame.f_back
        return None

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        importer = self._importer()
        if importer is not None and _under(os.path.abspath(importer), self.app_roots):
            with self._lock:
                if len(self.refused) < 100:
                    self.refused.append((fullname, importer))
            return None  # as in the image: the app's requirements do not provide it
        parts = fullname.split(".")
        search = [os.path.join(p, *parts[:-1]) for p in self.host_paths]
        return importlib.machinery.PathFinder.find_spec(fullname, search, target)

    def invalidate_caches(self) -> None:
        pass


FINDER: HostOnlyFinder | None = None


def install(host_paths: list[str]) -> HostOnlyFinder:
    """Put the finder last on ``sys.meta_path`` (after the regular path finder, which serves the app's packages
    and the standard library first). What is on ``sys.path`` now, the standard library aside, is the app's."""
    global FINDER
    app_paths = [p for p in sys.path if p and not _under(os.path.join(os.path.abspath(p), ""), _STDLIB)]
    FINDER = HostOnlyFinder(host_paths, app_paths)
    sys.meta_path.append(FINDER)
    return FINDER
