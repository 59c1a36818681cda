"""``Model.get_model_path`` for score.py inside a modelfunc app, as Azure ML v1 entry scripts call it.

This file is copied verbatim beside ``modelfunc_runtime.py`` into every app; the runtime calls :func:`install` before
it imports score.py. It depends on nothing but the standard library.

Azure ML v1 entry scripts find their model with ``from azureml.core.model import Model`` and
``Model.get_model_path('sklearn_regression_model.pkl')`` (or ``Model.get_model_path(model_name='x', version=2)``).
In an app:

* azureml-core is not installed (the usual case: nothing else in an app needs it): ``import azureml.core`` (and
  ``azureml.core.model``, ``azureml.exceptions``) gets the small stand-in below, which has ``Model.get_model_path``
  and the exceptions it raises. Another package that lays out ``azureml/`` (azureml-contrib-services ships
  ``azureml/__init__.py`` with ``pkgutil.extend_path`` and ``azureml/contrib/``) is kept: only the modules no
  installed package provides are stood in for, and an ``azureml`` package only when there is none.
* azureml-core is installed but cannot be imported here (an unpinned ``azureml-defaults`` resolved to 1.0.45, which
  fails on Python 3.10+ with the azure-mgmt packages pip picks today): the stand-in too, and a warning naming why.
* azureml-core is installed and imports: its own ``Model``, whose ``get_model_path`` (which looks only in
  ``$AML_APP_ROOT/azureml-models`` and the working directory, never in AZUREML_MODEL_DIR) first looks in
  AZUREML_MODEL_DIR as below when called without a workspace; everything else is azureml-core's own.

Where the model is found, AZUREML_MODEL_DIR being D (the app's ``model/``, where ``model_dir`` or ``model_files``
of modelfunc.yaml land)::

    D/<name>                               a file or a folder: returned as it is (whatever the version asked for)
    D/<name>/<version>/<one file or folder>  the layout Azure ML downloads registered models in: every entry of
                                           D/<name> a version number; the latest when version is None
    ./<name>                               in the working directory, as azureml-core looks last

Azure ML's own code, which this follows (azureml-core 1.61.0, ``azureml/core/model.py``): ``Model.get_model_path``
calls ``Model._get_model_path_local(model_name, version)``, which probes ``MODELS_DIR/<name>`` (``MODELS_DIR =
os.path.join(os.environ.get('AML_APP_ROOT', ''), "azureml-models")``), takes the latest version with
``Model._get_latest_version`` (``max(int(v) for v in os.listdir(...))``), requires exactly one entry in the version
folder (``WebserviceException("Dir {} can contain only 1 file or folder. Found {}")``) and otherwise falls back to
``Model._get_model_path_local_from_root``: ``./<name>``, else ``ModelNotFoundException("Model {} not found in cache
at {} or in current working directory {}. For more info, set logging level to DEBUG.")`` — re-raised as a
``WebserviceException`` with the same message when a version was given. ``version`` that is not an int is
``WebserviceException("version should be an int")``. The stand-in keeps those types and messages, with D in place
of the cache. Where it answers differently, on purpose (tests/host/test_model_path.py compares it with azureml-core):

* ``D/<name>`` a file, an empty folder or a folder of model files (not all version numbers): returned. azureml-core
  reaches such a path only through the working directory; probing it in its cache, it fails (``NotADirectoryError``,
  ``ValueError`` from ``int()``, ``versions is empty``).
* a version asked for that ``D/<name>/`` does not hold: an error naming the versions it holds (azureml-core returns
  ``./<name>``, the folder of all versions, when the working directory has it).
* names starting with a dot (``.DS_Store``, ``.ipynb_checkpoints``) are not counted as versions or model files.
* paths are absolute (azureml-core returns ``./<name>`` as the bare name).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import logging
import os
import sys
import types
from typing import Any

__all__ = ["AzureMLException", "Model", "ModelNotFoundException", "WebserviceException", "install", "locate"]

module_logger = logging.getLogger("azureml.core.model")  # where azureml-core logs the same debug lines
logger = logging.getLogger("modelfunc.runtime")
STANDIN_MARK = "__modelfunc_standin__"  # set on every module this file stands in with
_PATCHED = "__modelfunc_model_dir__"  # set on azureml-core's get_model_path once it looks in AZUREML_MODEL_DIR


# ------------------------------------------------------------------------------------ azureml.exceptions


class AzureMLException(Exception):
    """azureml's base exception: ``.message``, and ``str()`` in azureml's shape."""

    def __init__(self, exception_message: str, inner_exception: BaseException | None = None, **kwargs: Any) -> None:
        super().__init__(exception_message)
        self._exception_message = exception_message
        self._inner_exception = inner_exception

    @property
    def message(self) -> str:
        return self._exception_message

    @message.setter
    def message(self, value: str) -> None:
        self._exception_message = value

    @property
    def inner_exception(self) -> BaseException | None:
        return self._inner_exception

    def __str__(self) -> str:
        response = json.dumps({"error": {"message": self.message}}, indent=4)
        return (f"{type(self).__name__}:\n\tMessage: {self.message}\n\tInnerException {self._inner_exception}"
                f"\n\tErrorResponse \n{response}")


class WebserviceException(AzureMLException):
    def __init__(self, exception_message: str, status_code: Any = None, logger: Any = None, **kwargs: Any) -> None:
        super().__init__(exception_message, **kwargs)
        self.status_code = status_code


class ModelNotFoundException(AzureMLException):  # not a WebserviceException, as in azureml-core
    def __init__(self, exception_message: str, logger: Any = None, **kwargs: Any) -> None:
        super().__init__(exception_message, **kwargs)


class UserErrorException(AzureMLException):
    pass


# ------------------------------------------------------------------------------------ where the model is


def models_dir() -> str:
    """AZUREML_MODEL_DIR (the runtime sets it to the app's model/), else azureml-core's own cache folder."""
    return os.environ.get("AZUREML_MODEL_DIR") or os.path.join(os.environ.get("AML_APP_ROOT", ""), "azureml-models")


def _visible(folder: str) -> list[str]:
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


def _versions(folder: str) -> dict[int, str] | None:
    """{version: folder name} when every entry of ``folder`` is a folder named by a version number (Azure ML's
    ``<name>/<version>/``), else None: then ``folder`` is the model itself."""
    versions: dict[int, str] = {}
    for name in _visible(folder):
        try:
            number = int(name)  # as Model._get_latest_version reads them
        except ValueError:
            return None
        if not os.path.isdir(os.path.join(folder, name)):
            return None
        if number not in versions or name == str(number):
            versions[number] = name
    return versions or None


def locate(model_name: Any, version: Any = None, model_dir: str | None = None, *,
           error: type[Exception] = WebserviceException) -> str | None:
    """Where ``Model.get_model_path(model_name, version)`` finds the model under ``model_dir`` (by default
    AZUREML_MODEL_DIR), or None when it is not there. ``error`` (the stand-in's WebserviceException, or azureml-core's
    own) is raised for a version that is not an int, a missing name, a version folder holding more than one thing,
    or a version that the folder of versions does not hold."""
    if version is not None and not isinstance(version, int):
        raise error("version should be an int")
    if model_name is None:
        raise error("model_name is None")
    root = model_dir or models_dir()
    candidate = os.path.join(root, os.fspath(model_name))
    if os.path.isdir(candidate):
        versions = _versions(candidate)
        if versions is not None:
            chosen = max(versions) if version is None else version
            module_logger.debug("Model %s: versions %s in %s, using %s", model_name, sorted(versions), candidate,
                                chosen)
            if chosen not in versions:
                raise error(f"Model {model_name} version {version} not found in cache at {root}: {candidate} holds "
                            f"version{'s' if len(versions) > 1 else ''} {', '.join(map(str, sorted(versions)))}")
            folder = os.path.join(candidate, versions[chosen])
            entries = _visible(folder)
            if len(entries) != 1:
                raise error(f"Dir {folder} can contain only 1 file or folder. Found {entries}")
            return os.path.join(folder, entries[0])
    if os.path.exists(candidate):
        return candidate
    return None


def _not_found(model_name: Any, root: str) -> str:
    return (f"Model {model_name} not found in cache at {root} or in current working directory {os.getcwd()}. "
            "For more info, set logging level to DEBUG. (modelfunc: AZUREML_MODEL_DIR is the app's model folder, "
            "made from model_dir or model_files in modelfunc.yaml; Model.get_model_path finds <it>/<name>, a file or "
            "folder, or <it>/<name>/<version>/<one file or folder>.)")


def _debug_paths(root: str) -> None:
    if module_logger.isEnabledFor(logging.DEBUG):
        paths = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files][:200]
        module_logger.debug("Checking %s: %d files: %s", root, len(paths), "\n".join(paths))


class Model:
    """The part of ``azureml.core.model.Model`` an entry script uses in a scoring app: ``get_model_path``."""

    def __init__(self, workspace: Any = None, name: Any = None, *args: Any, **kwargs: Any) -> None:
        raise WebserviceException(
            "Model(workspace, ...) needs azureml-core, which this app does not have: in score.py, find the model's "
            "files with Model.get_model_path(name) (modelfunc's stand-in for azureml.core), or add azureml-core to "
            "the app's requirements")

    @staticmethod
    def get_model_path(model_name: Any, version: Any = None, _workspace: Any = None) -> str:
        """The path to the model ``model_name`` (its latest version when ``version`` is None); see the module
        docstring for where it is looked for. ``_workspace`` is not used: nothing is downloaded."""
        root = models_dir()
        found = locate(model_name, version, root)
        if found is None:
            local = os.path.join(os.getcwd(), os.fspath(model_name))
            if os.path.exists(local):
                return local
            _debug_paths(root)
            message = _not_found(model_name, root)
            if version is not None:
                raise WebserviceException(message)
            raise ModelNotFoundException(message)
        module_logger.debug("Found model path at %s", found)
        return found


# ------------------------------------------------------------------------------------ azureml-core's own Model


def patch(model_class: Any, exceptions: Any = None) -> None:
    """Make azureml-core's ``Model.get_model_path`` look in AZUREML_MODEL_DIR first when called without a workspace
    (no version of azureml-core does: it looks in ``$AML_APP_ROOT/azureml-models`` and the working directory)."""
    original = model_class.__dict__.get("get_model_path")
    func = getattr(original, "__func__", original)
    if func is None or getattr(func, _PATCHED, False):
        return
    error = getattr(exceptions, "WebserviceException", WebserviceException)

    @functools.wraps(func)
    def get_model_path(model_name: Any, version: Any = None, _workspace: Any = None) -> str:
        root = os.environ.get("AZUREML_MODEL_DIR")
        if _workspace is None and root:
            found = locate(model_name, version, root, error=error)
            if found is not None:
                return found
        try:
            return func(model_name, version=version, _workspace=_workspace)
        except Exception as ex:
            message = getattr(ex, "message", "")
            if _workspace is None and root and isinstance(message, str) and " not found " in message:
                try:
                    better = type(ex)(f"{message} Looked first in AZUREML_MODEL_DIR {root} for {model_name} and "
                                      f"{model_name}/<version>/ (modelfunc).")
                except Exception:  # noqa: BLE001 - an exception class that cannot be rebuilt: raise it as it is
                    raise ex from None
                raise better from None
            raise

    setattr(get_model_path, _PATCHED, True)
    model_class.get_model_path = staticmethod(get_model_path)


# ------------------------------------------------------------------------------------ the import hook


def _standin(name: str) -> types.ModuleType:
    module = types.ModuleType(name, f"modelfunc's stand-in for {name} (see modelfunc_azureml_compat.py)")
    setattr(module, STANDIN_MARK, True)
    module.__file__ = __file__  # "cannot import name 'X' from 'azureml.core' (.../modelfunc_azureml_compat.py)"
    return module


def _fill(module: types.ModuleType, name: str) -> types.ModuleType:
    """Make ``module`` the stand-in for ``name`` (and register the stand-ins it brings along)."""
    setattr(module, STANDIN_MARK, True)
    module.__file__ = __file__
    if name == "azureml":
        module.__path__ = []  # a package with nothing in it but the stand-ins
    elif name == "azureml.exceptions":
        for cls in (AzureMLException, WebserviceException, ModelNotFoundException, UserErrorException):
            setattr(module, cls.__name__, cls)
    elif name == "azureml.core":
        module.__path__ = []
        model = sys.modules.get("azureml.core.model")
        if model is None or not getattr(model, STANDIN_MARK, False):
            model = _standin("azureml.core.model")
            model.__spec__ = importlib.machinery.ModuleSpec("azureml.core.model", None)
            model.Model = Model
            sys.modules["azureml.core.model"] = model
        module.model = model
        module.Model = Model

        def __getattr__(attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            # an AttributeError (hasattr() answers False); `from azureml.core import X` turns it into Python's
            # "cannot import name 'X' from 'azureml.core' (.../modelfunc_azureml_compat.py)"
            raise AttributeError(f"azureml.core has no {attr!r}: azureml-core is not installed, and modelfunc's "
                                 "stand-in for it has only Model (Model.get_model_path); add azureml-core to the "
                                 "app's requirements to use the rest")

        module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        _fill(module, module.__name__)


class _CoreLoader(importlib.abc.Loader):
    """azureml-core's own loader for ``azureml.core``, then: its Model patched; or, when it fails to import, the
    stand-in in its place (with a warning that names why)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, attr: str) -> Any:  # get_code, get_data, ... for whoever asks the module's loader
        return getattr(self.loader, attr)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        try:
            self.loader.exec_module(module)
        except Exception as ex:  # noqa: BLE001 - any failure of azureml-core's import: the stand-in takes over
            version = _installed_version()
            logger.warning("azureml-core %s is installed but does not import here (%s: %s): score.py gets "
                           "modelfunc's stand-in for azureml.core (Model.get_model_path, resolved in "
                           "AZUREML_MODEL_DIR); pin an azureml-core that imports on Python %d.%d to use its own",
                           version, type(ex).__name__, (str(ex).splitlines() or [""])[0], *sys.version_info[:2])
            for name in [n for n in sys.modules if n.startswith("azureml.core.")]:
                del sys.modules[name]
            standin = _fill(_standin("azureml.core"), "azureml.core")
            standin.__spec__ = importlib.machinery.ModuleSpec("azureml.core", _StandInLoader(), is_package=True)
            sys.modules["azureml.core"] = standin  # what the import statement hands back
            parent = sys.modules.get("azureml")
            if parent is not None:
                parent.core = standin  # type: ignore[attr-defined]
            # the exceptions the stand-in raises (also when azureml-core's own imported before the failure)
            exceptions = _fill(_standin("azureml.exceptions"), "azureml.exceptions")
            exceptions.__spec__ = importlib.machinery.ModuleSpec("azureml.exceptions", _StandInLoader())
            sys.modules["azureml.exceptions"] = exceptions
            if parent is not None:
                parent.exceptions = exceptions  # type: ignore[attr-defined]
            return
        model = sys.modules.get("azureml.core.model")
        if model is not None and hasattr(model, "Model"):
            patch(model.Model, sys.modules.get("azureml.exceptions"))


def _installed_version() -> str:
    try:
        from importlib.metadata import version

        return version("azureml-core")
    except Exception:  # noqa: BLE001 - only for a message
        return "(version unknown)"


class AzureMLFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``; acts only on ``azureml``, ``azureml.core`` and ``azureml.exceptions`` (the first
    import of each). What an installed package provides is looked up with the path finder (sys.path, the parent's
    ``__path__``), as the image's Python finds the app's packages."""

    NAMES = ("azureml", "azureml.core", "azureml.exceptions")

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.NAMES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None:
            package = fullname != "azureml.exceptions"
            return importlib.machinery.ModuleSpec(fullname, _StandInLoader(), is_package=package)
        if fullname == "azureml.core" and spec.loader is not None:
            spec.loader = _CoreLoader(spec.loader)
            return spec
        return None  # an installed package: the regular finders import it

    def invalidate_caches(self) -> None:
        pass


def install() -> None:
    """Register the finder (once), and patch azureml-core's Model if it was imported already."""
    if not any(type(f).__name__ == AzureMLFinder.__name__ for f in sys.meta_path):  # this file may load twice
        sys.meta_path.insert(0, AzureMLFinder())
    model = sys.modules.get("azureml.core.model")
    if model is not None and not getattr(model, STANDIN_MARK, False) and hasattr(model, "Model"):
        patch(model.Model, sys.modules.get("azureml.exceptions"))
