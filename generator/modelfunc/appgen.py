"""Render a model repo into an Azure Functions app (Python v2 programming model) plus its build context.

Layout of the output directory (default ``<repo>/build``)::

    Dockerfile, .dockerignore, layers/   the image build context, written by image.prepare_context
    app/function_app.py              exactly the configured trigger and output bindings
    app/host.json                    extension bundle v4, trigger settings
    app/requirements.txt             from environment.yml / requirements.txt, plus azure-functions
    app/modelfunc_runtime.py         the entry-script contract shim (copied verbatim)
    app/modelfunc_azureml_compat.py  Model.get_model_path for score.py, found in model/ (copied verbatim)
    app/modelfunc_openapi.py         HTTP trigger: the OpenAPI document's builder (copied verbatim), and
    app/modelfunc_openapi.json       what it describes: the app's HTTP functions, schemas inferred from the samples
    app/<score.py> and the rest      the entry script's whole source directory, as Azure ML ships it (less
                                     .amlignore/.gitignore, the build output, the model directory and
                                     tooling: see sourcedir.py)
    app/model/                       the model files
    app/local.settings.json          for `func start` / `modelfunc serve`, not deployed (.funcignore)

Rendering is deterministic (same inputs → same bytes, same mtimes) and atomic: the output appears
whole or not at all, and a previous output is replaced only when the new one is complete.

The new output is written into a staging folder beside it (``.<out>.<random>``) holding a lock file
(``.modelfunc-staging``: the writer's pid, and an exclusive ``flock`` for as long as the writer lives). A run
killed with SIGKILL (or a power cut) leaves its staging folder behind, its lock released by the kernel; the next
run for the same output proves each one abandoned by taking its lock, and removes it (a staging folder whose lock
is still held belongs to a live run and is left alone). The previous output is moved into the staging folder
before the swap, so a run killed between the two moves leaves it there, and the next run puts it back.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from . import __version__
from .config import Project
from .entryscript import check_methods, inspect_entry_script
from .environment import add_requirement, read_requirements
from .errors import PackageError
from .openapi import DESCRIPTION_FILE, SWAGGER_FUNCTION, SWAGGER_ROUTE, check_user_documents
from .openapi import description as openapi_description
from .runtime.modelfunc_runtime import MESSAGE_STAMP_CONNECTION, MESSAGE_STAMP_PATH, STAMP_CONTAINER
from .sourcedir import (
    AMLIGNORE,
    BUILD_MARKER,
    NOT_A_FILE,
    SYMLINK_OUT,
    SourceFiles,
    collect,
    listed_model_files,
    model_files,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: staging folders are not proven abandoned there
    fcntl = None  # type: ignore[assignment]

RUNTIME_FILE = Path(__file__).with_name("runtime") / "modelfunc_runtime.py"
OPENAPI_FILE = RUNTIME_FILE.with_name("modelfunc_openapi.py")  # shipped beside it in HTTP-trigger apps
AZUREML_COMPAT_FILE = RUNTIME_FILE.with_name("modelfunc_azureml_compat.py")  # beside it in every app (it imports it)
MARKER = BUILD_MARKER  # every output modelfunc writes holds it, so a later walk passes it over
APP_MODEL_DIR = "model"
FIXED_MTIME = 315532800  # 1980-01-01: stable mtimes keep image layers identical across renders
RESERVED = {"function_app.py", "modelfunc_runtime.py", AZUREML_COMPAT_FILE.name, OPENAPI_FILE.name, DESCRIPTION_FILE,
            "host.json", "requirements.txt", "requirements.lock", "local.settings.json", ".funcignore", APP_MODEL_DIR,
            MARKER}
LARGE_SOURCE = 64 * 2**20  # bytes beside the entry script past which package says what they cost
CACHE_REQUIREMENT = "redis>=5"  # redis-py, for cache: {redis: ...}
FUNCTION_NAMES = {"http": "score", "blob": "score_blob", "service-bus-queue": "score_message"}
STAGING_LOCK = ".modelfunc-staging"  # in a staging folder: the writer's pid, flock'ed while it lives
PREVIOUS = ".modelfunc-previous"  # in a staging folder: the output it replaces, between the two moves of the swap


@dataclass(frozen=True)
class PackageResult:
    out_dir: Path
    app_dir: Path
    entry_style: str
    skipped_requirements: tuple[str, ...]  # conda-only packages pip has nothing to install for
    source: SourceFiles | None = None  # what of the entry script's folder the app got, and what was left out


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelfunc", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["py"] = repr  # values reach generated Python only as literals, never as code
    return env


def _host_json(project: Project) -> str:
    trigger = project.trigger
    extensions: dict[str, object] = {}
    if trigger.type == "http":
        extensions["http"] = {"routePrefix": "api"}
    elif trigger.type == "blob":
        # Failures become error records (the function never raises for a bad blob), so a blob that
        # still fails is a host problem: give up on it after 3 tries instead of the default 5.
        extensions["blobs"] = {"maxDegreeOfParallelism": 4, "poisonBlobThreshold": 3}
    else:
        extensions["serviceBus"] = {"prefetchCount": 0, "messageHandlerOptions": {
            "autoComplete": True, "maxConcurrentCalls": 4}}
    host = {
        "version": "2.0",
        "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
        "functionTimeout": "00:10:00",
        "logging": {"logLevel": {"default": "Information"}},
        "extensions": extensions,
    }
    return json.dumps(host, indent=2) + "\n"


def _local_settings(project: Project) -> str:
    values = {"FUNCTIONS_WORKER_RUNTIME": "python", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    trigger = project.trigger
    if trigger.type == "blob":
        values[trigger.connection] = "UseDevelopmentStorage=true"
    elif trigger.type == "service-bus-queue":
        values[trigger.connection] = ""
    cache = project.config.cache
    if cache is not None and cache.redis is not None:
        values[cache.redis.connection] = ""  # a secret: set it in the Function App, never in the repo
    return json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n"


def _check_out_dir(project: Project, out_dir: Path) -> None:
    out = out_dir.resolve()
    root = project.root
    if out == root or out in root.parents:
        raise PackageError(f"output directory {out_dir} would contain the model repo itself",
                           hint="use a sub-directory such as build/")
    for inside in (*project.model_paths, project.entry_script):
        if out == inside or out in inside.parents or inside in out.parents:
            raise PackageError(f"output directory {out_dir} overlaps {inside}, which is copied into the app",
                               hint="use a directory outside it, such as build/ in the model repo")
    if any(p.exists() and not p.is_dir() for p in (out, *out.parents)):
        raise PackageError(f"output directory {out_dir} cannot be created: a file is in the way",
                           hint="choose another --out")
    if out.is_dir() and os.path.ismount(out):
        raise PackageError(f"output directory {out_dir} is a mount point: modelfunc replaces the output directory "
                           "as a whole (the new one is written beside it, then swapped in), which a mount point "
                           "cannot be", hint=f"use a folder inside it, e.g. --out {out_dir / 'build'}")
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        cwd = None
    if cwd is not None and (out == cwd or out in cwd.parents):
        raise PackageError(f"output directory {out_dir} is the current directory" + ("" if out == cwd else
                           " or holds it") + ": modelfunc replaces the output directory as a whole, which would "
                           "leave this shell in a deleted directory",
                           hint="use a sub-directory such as build/, or run modelfunc from another directory")
    if out.exists() and not (out / MARKER).is_file():
        if out.is_dir() and not any(out.iterdir()):
            return
        raise PackageError(
            f"output directory {out_dir} exists and was not written by modelfunc; refusing to replace it",
            hint="choose another --out, or remove it yourself",
        )


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    try:
        return str(path.relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def collect_source(project: Project, out_dir: Path) -> SourceFiles:
    """What of the entry script's folder the app gets (see sourcedir.py); clashes with the app's files are errors."""
    source = collect(project.entry_script.parent, out_dir=out_dir, separate=project.model_paths,
                     inputs=(project.config_path, project.environment_file))
    entry_name = project.entry_script.name
    if entry_name in RESERVED:
        raise PackageError(f"the entry script is named {entry_name!r}, which the app needs for its own file",
                           file=project.entry_script, hint="rename it (and entry_script in modelfunc.yaml)")
    if entry_name not in {rel for rel, _ in source.files}:
        why = next((i.reason for i in source.left_out if i.path == entry_name), "the build rules")
        raise PackageError(f"the entry script is left out of the app by {why}", file=project.entry_script,
                           hint=f"remove the pattern that matches {entry_name} from "
                                f"{source.ignore_file or 'the ignore file'}")
    ignore = source.ignore_file or AMLIGNORE
    for rel, _ in source.files:
        top = rel.split("/", 1)[0]
        if top not in RESERVED:
            continue
        is_dir = "/" in rel
        if top == APP_MODEL_DIR:
            model = f"model_dir is {project.config.model_dir!r}" if project.model_files is None else \
                "model_files lists the model"
            why = (f"{'a folder' if is_dir else 'a file'} named {top!r} beside the entry script would be shipped "
                   f"where the app keeps the model files ({model})")
        else:
            why = (f"{'a folder' if is_dir else 'a file'} named {top!r} beside the entry script would be shipped "
                   f"in place of the app's own {top}, which modelfunc writes")
        raise PackageError(why, file=source.root / top,
                           hint=f"rename it, or leave it out of the app: add the line /{top}{'/' if is_dir else ''} "
                                f"to {ignore} beside {entry_name}")
    return source


def _copy_source(source: SourceFiles, app: Path) -> None:
    for rel, path in source.files:
        target = app / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        if path.stat().st_mode & 0o111:  # an executable stays one (the image layer keeps 0755 for it)
            target.chmod(0o755)


def _copy_model(files: tuple[tuple[str, Path], ...], dst: Path) -> None:
    """The model directory's files (sourcedir.model_files: only from inside the repo) into the app's model/."""
    for rel, path in files:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


# ------------------------------------------------------------------ staging folders


def _claim(staging: Path) -> int | None:
    """Lock ``staging`` for this run: its lock file holds this pid and an exclusive flock (released by the kernel
    when the process ends, however it ends). Returns the descriptor to keep open, or None without flock."""
    fd = os.open(staging / STAGING_LOCK, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a folder mkdtemp just made: nobody else has it
    os.write(fd, f"{os.getpid()} {int(time.time())}\n".encode())
    return fd


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def remove_abandoned_staging(out_dir: Path, progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Remove the staging folders of earlier runs for ``out_dir`` that are proven abandoned: their lock file's
    flock can be taken, so the run that wrote them has ended without finishing. Returns the names removed.

    Only folders named ``.<out>.*`` beside ``out_dir`` that hold a lock file (regular, not a link) are candidates;
    anything else there is never touched. When ``out_dir`` is missing and an abandoned folder holds the previous
    output (the run died between the two moves of its swap), that output is put back first.
    """
    parent = out_dir.parent
    if fcntl is None or not parent.is_dir():
        return []
    removed = []
    prefix = f".{out_dir.name}."
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(os.path.join(entry.path, STAGING_LOCK), os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # no lock file: not a staging folder this version wrote; leave it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: a run writing this output right now
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").split()
            staging = Path(entry.path)
            previous = staging / PREVIOUS
            restored = ""
            if previous.is_dir() and not out_dir.exists():
                previous.rename(out_dir)
                restored = f"; put back the output it was replacing as {out_dir.name}"
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(entry.name)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(owner[1]))) \
                if len(owner) > 1 and owner[1].isdigit() else "at an unknown time"
            progress(f"removed {entry.name}: the staging folder of a package run that never finished (pid "
                     f"{owner[0] if owner else '?'}, started {when}, no longer running){restored}")
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _write_failure(error: OSError, staging: Path, out_dir: Path) -> PackageError:
    """An OSError while writing the output, as the user's paths say it (the staging folder is ours, not theirs)."""
    names = [str(n) for n in (error.filename2, error.filename) if n]  # shutil.copyfile: (source, destination)
    where = None
    for name in names:
        try:
            where = out_dir / Path(name).relative_to(staging)
            break
        except ValueError:
            continue
    reason = error.strerror or str(error)
    writing = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
    if names and where is None and not writing:
        message = f"cannot read {names[-1]} while writing {out_dir}: {reason}"
    else:
        message = f"cannot write {where or out_dir}: {reason}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space on that disk, or choose another --out (nothing was replaced: the previous output " \
               "is as it was)"
    elif error.errno == errno.EROFS:
        hint = "the file system is read-only: choose another --out"
    else:
        hint = "choose another --out"
    return PackageError(message, hint=hint)


def stamp_path(output_path: str) -> str:
    """Where the runtime stamps a blob answer ``output_path`` (``container/name``) with its deployment id."""
    return f"{STAMP_CONTAINER}/{output_path}"


def render(project: Project, out_dir: str | Path | None = None, *,
           before_swap: Callable[[Path], None] | None = None,
           progress: Callable[[str], None] = lambda _: None) -> PackageResult:
    """Write the Functions app for ``project``; see the module docstring.

    ``before_swap(staging_dir)`` may add to the output (the image build context) before it replaces the
    previous one, so a failure there leaves the previous output in place too.
    """
    out_dir = Path(out_dir) if out_dir else project.root / "build"
    info = inspect_entry_script(project.entry_script)
    if project.trigger.type == "http":
        check_methods(info, project.trigger.methods, config_file=project.config_path,
                      line=_config_line(project, ("trigger", "methods")))
    _check_out_dir(project, out_dir)
    out_dir = out_dir.resolve()  # `--out .` and friends: its name and parent are the real ones from here on
    source = collect_source(project, out_dir)
    for note in project.notes:
        progress(f"note: {note}")
    if project.model_files is not None:
        model = listed_model_files(project.model_files, repo=project.root, out_dir=out_dir)
    else:
        model = model_files(project.model_dir, repo=project.root, out_dir=out_dir)
    if project.trigger.type == "http":  # served as the app's OpenAPI document, as azmlinfsrv serves them
        check_user_documents(source.files, source.ignore_file or AMLIGNORE, project.entry_script.name)
    requirements = read_requirements(project.environment_file, python_version=project.config.python_version)
    if project.config.cache is not None and project.config.cache.redis is not None:
        add_requirement(requirements, CACHE_REQUIREMENT)  # the runtime's Redis client
    if requirements.skipped:
        progress(f"left out conda-only packages (nothing for pip to install): {', '.join(requirements.skipped)}")
    progress(source.summary_line(_shown(source.root)))
    progress(_model_line(model))
    if source.total_bytes > LARGE_SOURCE:
        progress(f"  note: these files are the image's code layer, sent again whenever the code changes; keep large "
                 f"files out of it with .amlignore, or put model files in model_dir ({APP_MODEL_DIR}/, its own layer)")
    for item in source.left_out:
        if item.reason == SYMLINK_OUT:
            progress(f"  not followed: {item.path} -> {item.target} (a symlink leading out of {_shown(source.root)})")
        elif item.reason == NOT_A_FILE:
            progress(f"  left out: {item.path} ({_kind(source.root / item.path)}, not a regular file: never read)")
    entry_name = project.entry_script.name
    function_name = FUNCTION_NAMES[project.trigger.type]
    openapi = None
    if project.trigger.type == "http":
        openapi, notes = openapi_description(project, function_name, project.name)
        if info.style == "schema":
            progress(f"openapi: GET /api/{SWAGGER_ROUTE} describes run() by its inference-schema decorators")
        else:
            progress(f"openapi: GET /api/{SWAGGER_ROUTE}; run() has no inference-schema decorators: "
                     + "; ".join(notes))
    env = _env()
    context = {
        "version": __version__,
        "config_name": project.config_path.name,
        "entry_script": entry_name,
        "model_dir": APP_MODEL_DIR,
        "trigger": project.trigger,
        "function_name": function_name,
        "redis": project.config.cache.redis if project.config.cache else None,
        # Which deployment wrote each answer (see modelfunc_runtime.DEPLOYMENT_SETTING): beside a blob answer;
        # for a queue answer, by its input message's id in the host storage account.
        "stamp_path": stamp_path(project.trigger.output_path) if project.trigger.type == "blob" else MESSAGE_STAMP_PATH,
        "stamp_connection": MESSAGE_STAMP_CONNECTION,
        # HTTP trigger: the app's OpenAPI document, GET /api/swagger.json (runtime/modelfunc_openapi.py)
        "swagger": {"function": SWAGGER_FUNCTION, "route": SWAGGER_ROUTE},
    }

    remove_abandoned_staging(out_dir, progress)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as e:
        raise PackageError(f"output directory {out_dir} cannot be created: {e.strerror}",
                           hint="choose another --out") from None
    lock = None
    try:
        lock = _claim(staging)
        app = staging / "app"
        app.mkdir()
        files = {
            "app/function_app.py": env.get_template("function_app.py.j2").render(context),
            "app/host.json": _host_json(project),
            "app/requirements.txt": requirements.render(),
            "app/local.settings.json": _local_settings(project),
            "app/.funcignore": "local.settings.json\n__pycache__/\n.venv/\n",
            MARKER: f"modelfunc {__version__}\n",
        }
        if openapi is not None:
            files[f"app/{DESCRIPTION_FILE}"] = json.dumps(openapi, indent=2) + "\n"
        for rel, text in files.items():
            (staging / rel).write_text(text, encoding="utf-8")
        shutil.copyfile(RUNTIME_FILE, app / "modelfunc_runtime.py")
        shutil.copyfile(AZUREML_COMPAT_FILE, app / AZUREML_COMPAT_FILE.name)
        if openapi is not None:
            shutil.copyfile(OPENAPI_FILE, app / OPENAPI_FILE.name)
        _copy_source(source, app)
        (app / APP_MODEL_DIR).mkdir()
        _copy_model(model, app / APP_MODEL_DIR)
        for path in staging.rglob("*"):
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        os.utime(staging, (FIXED_MTIME, FIXED_MTIME))
        if before_swap is not None:
            before_swap(staging)
        # Swap in atomically: the old output (if any) is removed only once the new one is complete. It is moved
        # into the staging folder first, so that a run killed between the two renames leaves it with the lock.
        if out_dir.exists():
            out_dir.rename(staging / PREVIOUS)
        staging.rename(out_dir)
    except OSError as e:
        _release(lock)
        _undo(staging, out_dir)
        raise _write_failure(e, staging, out_dir) from None
    except BaseException:
        _release(lock)
        _undo(staging, out_dir)
        raise
    try:
        shutil.rmtree(out_dir / PREVIOUS, ignore_errors=True)
        (out_dir / STAGING_LOCK).unlink(missing_ok=True)
    finally:
        _release(lock)
    return PackageResult(out_dir, out_dir / "app", info.style, tuple(requirements.skipped), source)


def _model_line(files: tuple[tuple[str, Path], ...], limit: int = 5) -> str:
    """One line: what the app's model/ (the image's model layer) holds."""
    from .sourcedir import _size

    sizes = [(rel, path.stat().st_size) for rel, path in files]
    total = sum(size for _, size in sizes)
    shown = ", ".join(f"{rel} {_size(size)}" for rel, size in sorted(sizes, key=lambda p: (-p[1], p[0]))[:limit])
    more = f", and {len(sizes) - limit} more" if len(sizes) > limit else ""
    return (f"model: {len(sizes)} file{'s' if len(sizes) != 1 else ''} ({_size(total)}) into {APP_MODEL_DIR}/"
            + (f": {shown}{more}" if sizes else ""))


def _undo(staging: Path, out_dir: Path) -> None:
    """A failed render: the previous output back in place if it was moved already, the staging folder removed."""
    previous = staging / PREVIOUS
    if previous.is_dir() and not out_dir.exists():
        previous.rename(out_dir)
    shutil.rmtree(staging, ignore_errors=True)


def _kind(path: Path) -> str:
    from .sourcedir import file_kind

    try:
        return file_kind(path.stat().st_mode)
    except OSError:
        return "unreadable"


def _config_line(project: Project, key: tuple[str, ...]) -> int | None:
    """The line of a key in modelfunc.yaml, for an error that points at it (None when it cannot be told)."""
    from .config import read_yaml

    try:
        return read_yaml(project.config_path, what=project.config_path.name)[1].get(key)
    except Exception:  # noqa: BLE001 - only a line number for a message: the file was read once already
        return None
