"""Render a model repo into an Azure Functions app (Python v2 programming model) plus its build context.

Layout of the output directory (default ``<repo>/build``)::

    Dockerfile, .dockerignore, layers/   the image build context, written by buildcontext.prepare_context
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
whole or not at all, and a previous output is replaced only when the new one is complete (staging.py). Two
steps: ``prepare_app`` checks and gathers everything (nothing is written), ``write_app`` writes the app into a
staging folder; ``render`` is both, staged and swapped in. ``image.package`` writes the build context into the
same staging folder before the swap.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import __version__
from .config import Project
from .entryscript import check_methods, inspect_entry_script
from .environment import Requirements, add_requirement, read_requirements
from .errors import PackageError
from .openapi import DESCRIPTION_FILE, SWAGGER_FUNCTION, SWAGGER_ROUTE, check_user_documents
from .openapi import description as openapi_description
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
from .staging import staged

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


@dataclass(frozen=True)
class PackageResult:
    out_dir: Path
    app_dir: Path
    entry_style: str
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
    host = {
        "version": "2.0",
        "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
        "functionTimeout": "00:10:00",
        "logging": {"logLevel": {"default": "Information"}},
        "extensions": project.trigger.host_extensions(),
    }
    return json.dumps(host, indent=2) + "\n"


def _local_settings(project: Project) -> str:
    values = {"FUNCTIONS_WORKER_RUNTIME": "python", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    values.update(project.trigger.local_settings())
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


@dataclass(frozen=True)
class AppPlan:
    """What ``prepare_app`` checked and gathered: the app, ready to be written into a staging folder."""

    project: Project
    out_dir: Path  # absolute
    entry_style: str
    source: SourceFiles
    model: tuple[tuple[str, Path], ...]
    requirements: Requirements
    context: dict[str, Any]  # the values of function_app.py.j2
    openapi: dict[str, Any] | None  # HTTP trigger: the app's OpenAPI document

    def result(self) -> PackageResult:
        return PackageResult(self.out_dir, self.out_dir / "app", self.entry_style, self.source)


def render(project: Project, out_dir: str | Path | None = None, *,
           progress: Callable[[str], None] = lambda _: None) -> PackageResult:
    """Write the Functions app for ``project`` (``prepare_app``, then ``write_app`` into a staging folder that
    replaces the previous output); see the module docstring."""
    plan = prepare_app(project, out_dir, progress=progress)
    with staged(plan.out_dir, progress) as staging:
        write_app(plan, staging)
    return plan.result()


def prepare_app(project: Project, out_dir: str | Path | None = None, *,
                progress: Callable[[str], None] = lambda _: None) -> AppPlan:
    """Check the project and the output directory (default ``<repo>/build``) and gather the app's inputs, saying
    what goes into the app; nothing is written."""
    out_dir = Path(out_dir) if out_dir else project.root / "build"
    info = inspect_entry_script(project.entry_script)
    if project.trigger.serves_http:
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
    if project.trigger.serves_http:  # served as the app's OpenAPI document, as azmlinfsrv serves them
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
    function_name = project.trigger.function_name
    openapi = None
    if project.trigger.serves_http:
        openapi, notes = openapi_description(project, function_name, project.name)
        if info.style == "schema":
            progress(f"openapi: GET /api/{SWAGGER_ROUTE} describes run() by its inference-schema decorators")
        else:
            progress(f"openapi: GET /api/{SWAGGER_ROUTE}; run() has no inference-schema decorators: "
                     + "; ".join(notes))
    context = {
        "version": __version__,
        "config_name": project.config_path.name,
        "entry_script": project.entry_script.name,
        "model_dir": APP_MODEL_DIR,
        "trigger": project.trigger,
        "function_name": function_name,
        "redis": project.config.cache.redis if project.config.cache else None,
        # Which deployment wrote each answer (see modelfunc_runtime.DEPLOYMENT_SETTING): beside a blob answer;
        # for a queue answer, by its input message's id in the host storage account (None: HTTP, in the answer).
        "stamp_path": project.trigger.stamp_path,
        "stamp_connection": project.trigger.stamp_connection,
        # HTTP trigger: the app's OpenAPI document, GET /api/swagger.json (runtime/modelfunc_openapi.py)
        "swagger": {"function": SWAGGER_FUNCTION, "route": SWAGGER_ROUTE},
    }
    return AppPlan(project, out_dir, info.style, source, model, requirements, context, openapi)


def write_app(plan: AppPlan, staging: Path) -> None:
    """Write the app of ``plan`` into ``staging`` (app/ and the output marker), every mtime FIXED_MTIME."""
    project = plan.project
    app = staging / "app"
    app.mkdir()
    files = {
        "app/function_app.py": _env().get_template("function_app.py.j2").render(plan.context),
        "app/host.json": _host_json(project),
        "app/requirements.txt": plan.requirements.render(),
        "app/local.settings.json": _local_settings(project),
        "app/.funcignore": "local.settings.json\n__pycache__/\n.venv/\n",
        MARKER: f"modelfunc {__version__}\n",
    }
    if plan.openapi is not None:
        files[f"app/{DESCRIPTION_FILE}"] = json.dumps(plan.openapi, indent=2) + "\n"
    for rel, text in files.items():
        (staging / rel).write_text(text, encoding="utf-8")
    shutil.copyfile(RUNTIME_FILE, app / "modelfunc_runtime.py")
    shutil.copyfile(AZUREML_COMPAT_FILE, app / AZUREML_COMPAT_FILE.name)
    if plan.openapi is not None:
        shutil.copyfile(OPENAPI_FILE, app / OPENAPI_FILE.name)
    _copy_source(plan.source, app)
    (app / APP_MODEL_DIR).mkdir()
    _copy_model(plan.model, app / APP_MODEL_DIR)
    for path in staging.rglob("*"):
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    os.utime(staging, (FIXED_MTIME, FIXED_MTIME))


def _model_line(files: tuple[tuple[str, Path], ...], limit: int = 5) -> str:
    """One line: what the app's model/ (the image's model layer) holds."""
    from .sourcedir import _size

    sizes = [(rel, path.stat().st_size) for rel, path in files]
    total = sum(size for _, size in sizes)
    shown = ", ".join(f"{rel} {_size(size)}" for rel, size in sorted(sizes, key=lambda p: (-p[1], p[0]))[:limit])
    more = f", and {len(sizes) - limit} more" if len(sizes) > limit else ""
    return (f"model: {len(sizes)} file{'s' if len(sizes) != 1 else ''} ({_size(total)}) into {APP_MODEL_DIR}/"
            + (f": {shown}{more}" if sizes else ""))


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
