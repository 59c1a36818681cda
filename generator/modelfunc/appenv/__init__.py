"""The app's own environment: one resolution per (requirements, Python version, platform), written as a lock file,
installed once, and used everywhere the app runs.

- :func:`resolve` (:mod:`.resolve`) turns the generated ``requirements.txt`` into a :class:`Lock` (:mod:`.lock`:
  exact versions and sha256 hashes of the wheels for the image's platform: CPython ``python_version`` on Linux
  x86-64), with pip's own resolver (``pip install --dry-run --report``). The lock is cached per requirements text;
  ``--refresh-dependencies`` resolves again. When an unpinned requirement resolves below its newest release because
  that release cannot be installed from wheels on the target (the 2019 ``azureml-defaults`` case), the lock says
  which and why, and what would fix it.
- :func:`site_tree` (:mod:`.trees`) installs a lock, hash-checked, into a cached folder: the image's dependencies
  layer is that folder, and so is the local run's environment when this machine can run it (Linux x86-64 with an
  interpreter of the app's Python version).
- :func:`local_env` (:mod:`.trees`) gives the app a Python of its own: a virtual environment (no pip, no packages of
  its own) whose only third-party packages are the locked ones — the image's tree where this machine matches, else
  the same versions installed for this machine. Nothing is ever installed into modelfunc's own environment.
- :func:`host_command` (:mod:`.host`) starts the local host in that environment: the app's packages come first on
  ``sys.path``, as ``PYTHON_ISOLATE_WORKER_DEPENDENCIES=1`` makes the Functions Python worker load them
  (https://learn.microsoft.com/azure/azure-functions/functions-app-settings#python_isolate_worker_dependencies),
  and modelfunc's own packages are reachable only by the host's code (see ``localhost/isolation.py``).

:mod:`.pip` holds what they share: modelfunc's cache folder and the pip options that select the image's wheels.
Callers import this package (``from . import appenv``; ``appenv.for_app(...)``), not the modules inside it.
"""

from __future__ import annotations

from ..errors import EnvironmentSpecError
from .host import BOOT, HOST_PATH_ENV, for_app, host_command, host_paths, run_host
from .lock import LOCK_FORMAT, LOCK_NAME, Lock, Locked, compare, installed_versions, read_lock, write_lock
from .pip import Progress, cache_root, default_pip_cache, pip_command, pip_platform_args
from .resolve import PYTHONS, NoWheel, far_behind, resolve
from .trees import IMAGE_SITE_PACKAGES, AppEnv, local_env, matching_python, site_tree, tree_bytecode, unlocked_env

__all__ = [
    "BOOT", "HOST_PATH_ENV", "IMAGE_SITE_PACKAGES", "LOCK_FORMAT", "LOCK_NAME", "PYTHONS", "AppEnv",
    "EnvironmentSpecError", "Lock", "Locked", "NoWheel", "Progress", "cache_root", "compare", "default_pip_cache",
    "far_behind", "for_app", "host_command", "host_paths", "installed_versions", "local_env", "matching_python",
    "pip_command", "pip_platform_args", "read_lock", "resolve", "run_host", "site_tree", "tree_bytecode",
    "unlocked_env", "write_lock",
]
