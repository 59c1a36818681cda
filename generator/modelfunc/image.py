"""The container image: a reproducible build context, the docker-py build, an in-image self-test, the push.

Layers, least to most often changed: base image | dependencies | model files | code. Each of ours is a
tar written here with fixed owners, modes and mtimes and sorted entries, then ADDed by the Dockerfile:
the classic builder's COPY stamps the directories it creates with the build time, so its layers differ
on every build, while an ADDed tar keeps the metadata it carries. Identical inputs therefore give
identical layer digests, and a change to score.py re-pushes only the code layer (kilobytes).

Dependencies are resolved on the build machine for the image's Python and platform (pip with
``--platform``/``--python-version``/``--only-binary``, with a pip cache), so the build needs no network.
A requirement with no wheel falls back to ``pip install`` inside the build, which is said in the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .appgen import APP_MODEL_DIR, FIXED_MTIME
from .config import Project, load_expected
from .errors import EnvironmentSpecError, ModelfuncError, OptionError
from .runtime.modelfunc_runtime import SELFTEST_MARK
from .sourcedir import SourceFiles

Progress = Callable[[str], None]
SCRIPT_ROOT = "home/site/wwwroot"
SITE_PACKAGES = f"{SCRIPT_ROOT}/.python_packages/lib/site-packages"
LAYERS = ("dependencies", "model", "code")
LAYER_FORMAT = 2  # bump when write_layer() changes what it writes: cached dependency layers are then redone
SELFTEST_DIR = "/modelfunc-selftest"


class ImageError(ModelfuncError):
    """The Docker engine, the build, the self-test or the registry failed."""

    exit_code = 1


class SelfTestFailed(ImageError):
    """The built image could not load the app or did not score the sample as expected."""


def _quiet(_: str) -> None:
    pass


# ---------------------------------------------------------------------------------------- dependencies


def pip_platform_args(python_version: str) -> list[str]:
    """pip options selecting wheels for the Functions image: CPython on Linux x86-64 (Debian 12, glibc 2.36)."""
    nodot = python_version.replace(".", "")
    platforms = ["manylinux2014_x86_64", *(f"manylinux_2_{n}_x86_64" for n in range(17, 37))]
    return ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
            "--abi", f"cp{nodot}", *(arg for p in platforms for arg in ("--platform", p))]


def cache_root() -> Path:
    """Where modelfunc keeps its pip cache and resolved dependency layers."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelfunc"


def default_pip_cache() -> Path:
    return cache_root() / "pip"


@dataclass
class Dependencies:
    site_packages: Path | None  # None: nothing could be pre-resolved, the build installs them
    fallback_reason: str | None = None


def resolve_dependencies(requirements: Path, dest: Path, *, python_version: str, cache_dir: Path | None = None,
                         progress: Progress = _quiet) -> Dependencies:
    """Install the requirements for the image's platform into ``dest`` on this machine."""
    cmd = [sys.executable, "-m", "pip", "install", "--target", str(dest), "--no-compile", "--no-input",
           "--disable-pip-version-check", "--no-warn-script-location", "--progress-bar", "off",
           "--cache-dir", str(cache_dir or default_pip_cache()), *pip_platform_args(python_version),
           "--requirement", str(requirements)]
    progress(f"resolving dependencies for Python {python_version} on linux/amd64 (pip, wheels only)")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith(("Collecting", "Successfully installed")):
            progress("  " + line.strip())
    if proc.wait() == 0:
        return Dependencies(dest)
    output = "\n".join(lines)
    missing = re.search(r"No matching distribution found for (\S+)", output)
    if missing and _has_sdist(missing.group(1), cache_dir):
        reason = (f"{missing.group(1)} has no wheel for Python {python_version} on linux/amd64, so the "
                  "dependencies are installed inside the build instead (needs network there, not reproducible)")
        progress("WARNING: " + reason)
        shutil.rmtree(dest, ignore_errors=True)
        return Dependencies(None, reason)
    problem = next((ln for ln in reversed(lines) if ln.startswith("ERROR:")), lines[-1] if lines else "pip failed")
    raise EnvironmentSpecError(
        f"the dependencies cannot be resolved for Python {python_version} on linux/amd64: "
        f"{problem.removeprefix('ERROR: ')}",
        file=requirements, hint="check the package names and versions in environment.yml / requirements.txt",
    )


def _has_sdist(requirement: str, cache_dir: Path | None) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "--dest", tmp,
               "--disable-pip-version-check", "--no-input", "--quiet",
               "--cache-dir", str(cache_dir or default_pip_cache()), requirement]
        return subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL).returncode == 0


# ---------------------------------------------------------------------------------------- layers


def _entries(pairs: Iterable[tuple[str, Path]]) -> list[tuple[str, Path | None]]:
    """(image path, source) for every file plus every parent directory (source None), sorted."""
    out: dict[str, Path | None] = {}
    for dest, src in pairs:
        parts = dest.split("/")
        for i in range(1, len(parts)):
            out.setdefault("/".join(parts[:i]) + "/", None)
        out[dest] = src
    return sorted(out.items())


def write_layer(path: Path, pairs: Iterable[tuple[str, Path]]) -> str:
    """Write a reproducible layer tar; returns its sha256 (what Docker calls the layer's diff id)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, src in _entries(pairs):
            info = tarfile.TarInfo(name.rstrip("/") if src is not None else name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "root", "root"
            if src is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif src.is_symlink():
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(src), 0o777
                tar.addfile(info)
            else:
                info.size = src.stat().st_size
                info.mode = 0o755 if src.stat().st_mode & 0o111 else 0o644
                with open(src, "rb") as fh:
                    tar.addfile(info, fh)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _tree(root: Path, prefix: str, *, skip: Callable[[Path], bool] = lambda p: False) -> list[tuple[str, Path]]:
    pairs = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if skip(rel) or "__pycache__" in rel.parts or (p.is_dir() and not p.is_symlink()):
            continue
        pairs.append((f"{prefix}/{rel.as_posix()}", p))
    return pairs


DOCKERFILE = """\
# Generated by modelfunc {version}. Layers, least to most often changed:
# base image | dependencies | model files | code. Each ADDed tar is reproducible (fixed owners, modes,
# mtimes), so identical inputs give identical layer digests. Build context: this directory.
FROM {base_image}

ENV AzureWebJobsScriptRoot=/home/site/wwwroot \\
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \\
    AZUREML_MODEL_DIR=/home/site/wwwroot/{model_dir} \\
    PYTHONDONTWRITEBYTECODE=1

{dependencies}
ADD layers/model.tar /
ADD layers/code.tar /
"""
DEPS_LAYER = "ADD layers/dependencies.tar /"
DEPS_IN_BUILD = """\
# {reason}
COPY app/requirements.txt /home/site/requirements.txt
RUN python -m pip install --no-cache-dir --disable-pip-version-check \\
    --target /{site_packages} -r /home/site/requirements.txt"""


@dataclass
class Context:
    dir: Path
    dockerfile: Path
    layers: dict[str, str]  # layer name → sha256 of its tar (the diff id)
    deps_in_build: str | None = None  # why the dependencies are installed during the build, if they are


def _dependencies_layer(requirements: Path, dest: Path, *, python_version: str, cache_dir: Path | None,
                        refresh: bool, progress: Progress) -> tuple[str | None, str | None]:
    """Write the dependencies layer tar (reusing the one cached for identical requirements unless ``refresh``).

    Returns (sha256 of the tar, None) or (None, why the build installs them instead).
    """
    key = hashlib.sha256("\0".join([__version__, str(LAYER_FORMAT), python_version, *pip_platform_args(python_version),
                                     requirements.read_text(encoding="utf-8")]).encode()).hexdigest()[:24]
    cached = cache_root() / "layers" / f"dependencies-{key}.tar"
    digest_file = cached.with_suffix(".sha256")
    if not refresh and (cached.exists() or digest_file.exists()):
        problem = _cached_layer_problem(cached, digest_file)
        if problem is None:
            progress(f"dependencies: reusing the layer resolved before for these requirements ({cached.name}); "
                     "--refresh-dependencies resolves them again")
            _link_or_copy(cached, dest)
            return digest_file.read_text(encoding="ascii").strip(), None
        progress(f"dependencies: the cached layer {cached.name} cannot be used ({problem}): resolving the "
                 "dependencies again, and the cache entry is replaced")
    with tempfile.TemporaryDirectory(prefix="modelfunc-deps-") as tmp:
        deps = resolve_dependencies(requirements, Path(tmp) / "site-packages", python_version=python_version,
                                    cache_dir=cache_dir, progress=progress)
        if deps.site_packages is None:
            return None, deps.fallback_reason
        # bin/ holds console scripts with this machine's interpreter path: not for the image.
        digest = write_layer(dest, _tree(deps.site_packages, SITE_PACKAGES, skip=lambda rel: rel.parts[0] == "bin"))
    _keep_in_cache(dest, digest, cached, digest_file, progress)
    return digest, None


DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def _cached_layer_problem(cached: Path, digest_file: Path) -> str | None:
    """Why a cached dependencies layer cannot be reused (None: it can): both files must be there, the digest file
    must hold one sha256 digest, and the tar's own digest must be that one (a run killed while writing it, a disk
    error or a hand edit would otherwise reach the image unnoticed)."""
    if not cached.is_file():
        return f"{cached.name} is missing"
    if not digest_file.is_file():
        return f"{digest_file.name} is missing"
    try:
        recorded = digest_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        return f"{digest_file.name} cannot be read: {getattr(e, 'strerror', None) or e}"
    if not DIGEST_RE.fullmatch(recorded):
        return f"{digest_file.name} holds {recorded[:80]!r}, not a sha256 digest" if recorded else \
            f"{digest_file.name} is empty"
    try:
        actual = _sha256(cached)
    except OSError as e:
        return f"{cached.name} cannot be read: {e.strerror}"
    if actual != recorded:
        return f"{cached.name} has digest {actual[:19]}…, not the {recorded[:19]}… recorded for it"
    return None


def _keep_in_cache(layer: Path, digest: str, cached: Path, digest_file: Path, progress: Progress) -> None:
    """Keep a resolved layer for the next run; a cache that cannot be written (read-only, full) only costs that."""
    partial = cached.with_suffix(f".{os.getpid()}.partial")
    partial_digest = digest_file.with_suffix(f".{os.getpid()}.partial")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        digest_file.unlink(missing_ok=True)  # never a digest beside a tar it does not describe, even for a moment
        shutil.copyfile(layer, partial)
        os.utime(partial, (FIXED_MTIME, FIXED_MTIME))
        partial.replace(cached)
        partial_digest.write_text(digest + "\n", encoding="ascii")
        partial_digest.replace(digest_file)
    except OSError as e:
        for leftover in (partial, partial_digest):
            try:
                leftover.unlink(missing_ok=True)
            except OSError:
                pass
        progress(f"dependencies: the resolved layer is not kept for the next run: {e.strerror or e} "
                 f"({e.filename or cached.parent}); packaging goes on without the cache")


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link (cheap, same bytes) when src and dest share a file system, else copy."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
        os.utime(dest, (FIXED_MTIME, FIXED_MTIME))


def prepare_context(project: Project, out: Path, *, base_image: str | None = None, cache_dir: Path | None = None,
                    refresh: bool = False, progress: Progress = _quiet) -> Context:
    """Write layers/*.tar, the Dockerfile and .dockerignore next to the rendered app in ``out``/app."""
    app = out / "app"
    layers_dir = out / "layers"
    shutil.rmtree(layers_dir, ignore_errors=True)
    layers_dir.mkdir()
    layers: dict[str, str] = {}
    deps_digest, fallback = _dependencies_layer(app / "requirements.txt", layers_dir / "dependencies.tar",
                                                python_version=project.config.python_version,
                                                cache_dir=cache_dir, refresh=refresh, progress=progress)
    if deps_digest:
        layers["dependencies"] = deps_digest
    model = _tree(app / APP_MODEL_DIR, f"{SCRIPT_ROOT}/{APP_MODEL_DIR}")
    layers["model"] = write_layer(layers_dir / "model.tar", model)
    code = _tree(app, SCRIPT_ROOT, skip=lambda rel: rel.parts[0] in (APP_MODEL_DIR, "local.settings.json"))
    layers["code"] = write_layer(layers_dir / "code.tar", code)
    dependencies = DEPS_LAYER if deps_digest else DEPS_IN_BUILD.format(reason=fallback, site_packages=SITE_PACKAGES)
    base = base_image or project.default_base_image
    check_base_image(base)  # a value that reaches the Dockerfile as it is: one reference, never an instruction
    dockerfile = out / "Dockerfile"
    dockerfile.write_text(DOCKERFILE.format(version=__version__, base_image=base,
                                            model_dir=APP_MODEL_DIR, dependencies=dependencies), encoding="utf-8")
    (out / ".dockerignore").write_text("*\n!layers/\n!app/requirements.txt\n", encoding="utf-8")
    for p in (dockerfile, out / ".dockerignore"):
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))
    for name, digest in layers.items():
        size = (layers_dir / f"{name}.tar").stat().st_size
        progress(f"layer {name:<12} {size / 1024:10.1f} KiB  {digest[:19]}")
    return Context(out, dockerfile, layers, fallback)


# ---------------------------------------------------------------------------------------- engine


def engine(timeout: int = 600) -> Any:
    """A docker-py client for the local engine (DOCKER_HOST or the default socket)."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:  # noqa: BLE001 - docker-py raises several kinds for "no engine"
        raise ImageError(
            f"no Docker engine answers at {os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}: "
            f"{str(e).splitlines()[0][:200]}",
            hint="start Docker (dockerd), or pass --no-build to write the build context only",
        ) from None
    return client


def git_tag(repo: Path) -> str | None:
    """The commit SHA of the repo (with -dirty when its files changed), or None outside git."""
    def git(*args: str) -> str | None:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        return proc.stdout.strip() if proc.returncode == 0 else None

    sha = git("rev-parse", "--short=12", "HEAD")
    if not sha:
        return None
    dirty = git("status", "--porcelain", "--", ".")
    return f"{sha}-dirty" if dirty else sha


def content_tag(context: Context) -> str:
    """A tag from the layer digests, for repos outside git."""
    joined = "".join(context.layers[k] for k in sorted(context.layers))
    return "content-" + hashlib.sha256(joined.encode()).hexdigest()[:12]


@dataclass
class Built:
    image_id: str
    reference: str  # repository:tag
    diff_ids: list[str]


CODE_LINE = "ADD layers/code.tar /\n"
STAGE_REPOSITORY = "modelfunc-stage"


def _run_build(client: Any, path: Path, reference: str, *, network: str, base: str, progress: Progress) -> str:
    """One docker-py build of the context at ``path``; returns the image id."""
    log: list[str] = []
    image_id, step = None, ""
    try:
        stream = client.api.build(path=str(path), tag=reference, rm=True, forcerm=True, pull=False,
                                  decode=True, network_mode=network)
        for chunk in stream:
            for line in chunk.get("stream", "").splitlines():
                if line.strip():
                    log.append(line)
                    if line.startswith("Step "):
                        step = line
                        progress("  " + line.strip())
            if "ID" in chunk.get("aux", {}):
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                message = chunk["error"].strip()
                if step.startswith("Step 1/") and base in step:
                    raise ImageError(f"the base image {base} is not available: {message}",
                                     hint="pull it first (docker pull), or pass --base-image with an image this "
                                     "engine has")
                raise ImageError(f"the image build failed at {step or 'the start'}: {message}\n"
                                 + "\n".join(log[-15:]))
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - docker-py APIError and connection errors
        raise ImageError(f"the image build failed: {str(e).splitlines()[0][:300]}") from None
    if image_id is None:
        raise ImageError("the image build ended without an image id:\n" + "\n".join(log[-15:]))
    return image_id


def _base_image_id(client: Any, base: str, *, pull: bool, progress: Progress) -> str:
    import docker

    try:
        return client.images.get(base).id
    except docker.errors.ImageNotFound:
        if not pull:
            raise ImageError(f"the base image {base} is not available: this engine does not have it (--no-pull)",
                             hint="pull it first (docker pull), or pass --base-image with an image this "
                             "engine has") from None
    progress(f"  pulling the base image {base}")
    try:
        return client.images.pull(base).id
    except Exception as e:  # noqa: BLE001 - docker-py APIError / connection errors
        raise ImageError(f"the base image {base} is not available: {str(e).splitlines()[0][:300]}",
                         hint="check the name and that this machine can reach its registry, or pass --base-image "
                         "with an image this engine has") from None


def build(client: Any, context: Context, reference: str, *, pull: bool = True, progress: Progress = _quiet) -> Built:
    """docker-py build of the context, streaming the builder's output.

    Two builds give exactly the image the Dockerfile describes: a stage image (base | dependencies | model),
    tagged by what went into it and reused while that is unchanged, then the code layer on top of it from
    a context holding only code.tar. So a score.py change sends kilobytes to the engine, not the model.
    With ``pull=False`` a base image the engine does not have is an error before anything is fetched.
    """
    import docker

    network = "host" if context.deps_in_build else "none"
    dockerfile = context.dockerfile.read_text(encoding="utf-8")
    assert dockerfile.endswith(CODE_LINE), "the code layer must be the Dockerfile's last instruction"
    base = dockerfile.split("\nFROM ", 1)[1].split()[0]
    base_id = _base_image_id(client, base, pull=pull, progress=progress)
    stage_key = hashlib.sha256("\0".join([base_id, dockerfile, *(context.layers.get(n, "") for n in LAYERS[:2])])
                               .encode()).hexdigest()[:24]
    stage = f"{STAGE_REPOSITORY}:{stage_key}"
    try:
        client.images.get(stage)
        progress(f"  base, dependencies and model unchanged: reusing {stage}")
    except docker.errors.ImageNotFound:
        with tempfile.TemporaryDirectory(prefix="modelfunc-stage-", dir=context.dir) as tmp:
            staged = Path(tmp)
            (staged / "Dockerfile").write_text(dockerfile[: -len(CODE_LINE)], encoding="utf-8")
            for rel in ("layers/dependencies.tar", "layers/model.tar", "app/requirements.txt"):
                if (context.dir / rel).exists():
                    (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.link(context.dir / rel, staged / rel)
            _run_build(client, staged, stage, network=network, base=base, progress=progress)
    with tempfile.TemporaryDirectory(prefix="modelfunc-code-", dir=context.dir) as tmp:
        staged = Path(tmp)
        (staged / "layers").mkdir()
        os.link(context.dir / "layers" / "code.tar", staged / "layers" / "code.tar")
        (staged / "Dockerfile").write_text(f"FROM {stage}\n{CODE_LINE}", encoding="utf-8")
        image_id = _run_build(client, staged, reference, network="none", base=stage, progress=progress)
    image = client.images.get(image_id)
    return Built(image_id, reference, list(image.attrs["RootFS"]["Layers"]))


# ---------------------------------------------------------------------------------------- self-test


@dataclass
class SelfTest:
    passed: bool
    result: dict[str, Any]
    output: str
    mismatches: list[Any] = field(default_factory=list)


def self_test(client: Any, image_id: str, project: Project, *, timeout: float = 300,
              progress: Progress = _quiet) -> SelfTest:
    """Run the image with the entrypoint overridden: import the app, init(), score the sample, compare."""
    from .appgen import FUNCTION_NAMES
    from .blobtest import compare

    sample = project.sample_input
    progress(f"self-test: scoring {sample.name} inside the image (no network): run() directly, then through the "
             f"app's function {FUNCTION_NAMES[project.trigger.type]}")
    container = client.containers.run(
        image_id, entrypoint=["python3", "-m", "modelfunc_runtime", "selftest", f"{SELFTEST_DIR}/{sample.name}",
                              FUNCTION_NAMES[project.trigger.type]],
        working_dir=f"/{SCRIPT_ROOT}", network_mode="none", detach=True,
        environment={"PYTHONPATH": f"/{SCRIPT_ROOT}:/{SITE_PACKAGES}"},
        volumes={str(sample): {"bind": f"{SELFTEST_DIR}/{sample.name}", "mode": "ro"}})
    try:
        try:
            status = container.wait(timeout=timeout).get("StatusCode", 1)
        except Exception:  # noqa: BLE001 - a timeout from the engine's API
            container.kill()
            status = None
        output = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    marks = [ln for ln in output.splitlines() if ln.startswith(SELFTEST_MARK)]
    result = json.loads(marks[-1][len(SELFTEST_MARK):]) if marks else {}
    if status is None:
        return SelfTest(False, {"error": f"no result within {timeout:.0f} s"}, output)
    if not result.get("ok"):
        return SelfTest(False, result, output)
    expected = load_expected(project)
    body = result["body"].encode("utf-8")
    if isinstance(expected, bytes):
        mismatches = [] if body == expected else ["output bytes differ from samples.expected"]
    else:
        try:
            mismatches = compare(expected, json.loads(body), project.config.samples.tolerance)
        except json.JSONDecodeError as e:
            mismatches = [f"output is not JSON ({e})"]
    return SelfTest(not mismatches, result, output, mismatches)


# ---------------------------------------------------------------------------------------- push


@dataclass
class Pushed:
    reference: str  # repository@sha256:...
    digest: str
    pushed_layers: dict[str, int]  # short layer id → bytes uploaded
    existing_layers: list[str]


def split_repository(repository: str) -> tuple[str | None, str]:
    """('127.0.0.1:5000', 'team/model') for '127.0.0.1:5000/team/model'; (None, repo) for Docker Hub names."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, repository


def push(client: Any, repository: str, tag: str, *, username: str | None = None, password: str | None = None,
         progress: Progress = _quiet) -> Pushed:
    """Push repository:tag; the credentials go to the engine only, never to any output."""
    registry, _ = split_repository(repository)
    auth = {"username": username, "password": password} if username else None
    where = registry or "Docker Hub"
    progress(f"pushing {repository}:{tag} to {where}")
    sizes: dict[str, int] = {}
    done: dict[str, int] = {}
    next_note = time.monotonic() + 5
    pushed: dict[str, int] = {}
    existing: list[str] = []
    digest = None
    try:
        stream = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
        for chunk in stream:
            layer, status = chunk.get("id"), chunk.get("status", "")
            if "error" in chunk:
                raise ImageError(_push_error(where, chunk["error"]),
                                 hint="check the registry address and that it is running" if "connect" in
                                 chunk["error"] or "dial" in chunk["error"] else
                                 "check the registry user and the password in MODELFUNC_REGISTRY_PASSWORD")
            if status == "Pushing" and layer:
                detail = chunk.get("progressDetail") or {}
                if detail.get("total"):
                    sizes[layer] = max(sizes.get(layer, 0), int(detail["total"]))
                    done[layer] = int(detail.get("current") or 0)
                if time.monotonic() >= next_note:  # a long upload shows that it moves
                    progress(f"  uploading {sum(done.values()) / 2**20:.1f} of {sum(sizes.values()) / 2**20:.1f} MiB")
                    next_note = time.monotonic() + 5
            elif status == "Pushed" and layer:
                pushed[layer] = sizes.get(layer, 0)
                progress(f"  {layer}: pushed ({sizes.get(layer, 0) / 1024:.1f} KiB)")
            elif status == "Layer already exists" and layer:
                existing.append(layer)
                progress(f"  {layer}: already in the registry")
            if "aux" in chunk and "Digest" in chunk["aux"]:
                digest = chunk["aux"]["Digest"]
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - docker-py/requests errors talking to the engine
        raise ImageError(_push_error(where, str(e))) from None
    if not digest:
        raise ImageError(f"the push to {where} ended without a manifest digest")
    return Pushed(f"{repository}@{digest}", digest, pushed, existing)


def _push_error(where: str, message: str) -> str:
    text = message.strip().splitlines()[0][:300]
    if "unauthorized" in text or "authentication required" in text or "denied" in text:
        return f"registry {where} rejected the credentials: {text}"
    return f"pushing to registry {where} failed: {text}"


# ---------------------------------------------------------------------------------------- the pipeline


@dataclass
class Packaged:
    """What ``package`` produced; ``summary()`` is the JSON the CLI writes with --json."""

    app_dir: Path
    context: Context
    source: SourceFiles | None = None  # what of the entry script's folder the app (the code layer) got
    built: Built | None = None
    test: SelfTest | None = None
    pushed: Pushed | None = None
    rendered: Any = None  # appgen.PackageResult: the app as rendered

    @property
    def reference(self) -> str | None:
        """repository@digest once pushed, else repository:tag once built."""
        return self.pushed.reference if self.pushed else self.built.reference if self.built else None

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {"app": str(self.app_dir), "context": str(self.context.dir),
                                "layer_tars": self.context.layers}
        if self.source is not None:
            data["source"] = self.source.to_dict()
        if self.built:
            names = [n for n in LAYERS if n in self.context.layers or n != "dependencies"]
            data.update(image_id=self.built.image_id, tag=self.built.reference, diff_ids=self.built.diff_ids,
                        layers=dict(zip(names, self.built.diff_ids[-len(names):], strict=True)))
        if self.test:
            data["self_test"] = {"passed": self.test.passed,
                                 **{k: _without_base64(v) for k, v in self.test.result.items() if k != "traceback"}}
        if self.pushed:
            data.update(digest=self.pushed.digest, pushed_layers=self.pushed.pushed_layers,
                        existing_layers=self.pushed.existing_layers)
        data["reference"] = self.reference
        return data


def _without_base64(value: Any) -> Any:
    """A self-test part for the summary: the answer's text and SHA-256 (the bytes travel in the golden table)."""
    return {k: v for k, v in value.items() if k != "body_base64"} if isinstance(value, dict) else value


# Docker's reference grammar (distribution/reference, regexp.go): a tag, and repository path components (lower
# case) after an optional registry host; a digest. Matched whole (fullmatch: `$` would let a trailing newline in).
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:]+\])"  # a host name, or an IPv6 address in brackets
REPOSITORY_RE = re.compile(rf"(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")
DIGEST_REFERENCE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}")
MAX_REFERENCE = 255  # Docker's NameTotalLengthMax, for the repository name


def check_reference(repository: str | None, tag: str | None) -> None:
    """Refuse an image name Docker would refuse, before anything is rendered or built."""
    if repository is not None and (len(repository) > MAX_REFERENCE or not REPOSITORY_RE.fullmatch(repository)):
        raise OptionError(f"{repository!r} is not an image repository", field="--image",
                          hint="[REGISTRY[:PORT]/]PATH with lower-case letters, digits and . _ - between them, "
                               "e.g. myreg.azurecr.io/diabetes-scorer")
    if tag is not None and not TAG_RE.fullmatch(tag):
        raise OptionError(f"{tag!r} is not an image tag", field="--tag",
                          hint="up to 128 letters, digits, _ . - (not starting with . or -), e.g. v1 or a commit id")


def check_base_image(reference: str) -> None:
    """Refuse a base image that is not one image reference in Docker's grammar: REPOSITORY[:TAG][@DIGEST].

    It is written into the Dockerfile's FROM line as it is, so anything else (a newline above all) could add
    instructions of its own to the build."""
    name, _, digest = reference.partition("@")
    repository, tag = name, None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:  # a tag (a colon before the last slash is the registry's port)
        repository, tag = name[: len(name) - len(last)] + last.split(":", 1)[0], last.split(":", 1)[1]
    ok = (bool(reference) and len(repository) <= MAX_REFERENCE and REPOSITORY_RE.fullmatch(repository) is not None
          and (tag is None or TAG_RE.fullmatch(tag) is not None)
          and ("@" not in reference or DIGEST_REFERENCE_RE.fullmatch(digest) is not None))
    if not ok:
        raise OptionError(f"{reference!r} is not an image reference", field="--base-image",
                          hint="[REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST] with a lower-case repository, "
                               "e.g. mcr.microsoft.com/azure-functions/python:4-python3.11")


def package(project: Project, out: Path | None = None, *, build_image: bool = True, base_image: str | None = None,
            repository: str | None = None, tag: str | None = None, username: str | None = None,
            password: str | None = None, cache_dir: Path | None = None, refresh: bool = False,
            pull: bool = True, progress: Progress = _quiet) -> Packaged:
    """Render the app and its build context; then build, self-test and (with a registry host) push.

    A failing self-test raises SelfTestFailed (with ``.packaged``) after removing the image: nothing is pushed.
    """
    from .appgen import render

    check_reference(repository, tag)
    if base_image is not None:
        check_base_image(base_image)
    contexts: list[Context] = []
    clients: list[Any] = []

    def before_swap(staging: Path) -> None:
        contexts.append(prepare_context(project, staging, base_image=base_image, cache_dir=cache_dir,
                                        refresh=refresh, progress=progress))
        if build_image:  # every input is checked; without an engine the previous output stays as it was
            clients.append(engine())

    rendered = render(project, out, before_swap=before_swap, progress=progress)
    context = Context(rendered.out_dir, rendered.out_dir / "Dockerfile", contexts[0].layers, contexts[0].deps_in_build)
    result = Packaged(rendered.app_dir, context, rendered.source, rendered=rendered)
    if not build_image:
        return result
    client = clients[0]
    repository = repository or f"modelfunc/{project.name.lower()}"
    tag = tag or git_tag(project.root) or content_tag(context)
    progress(f"==> build {repository}:{tag}")
    result.built = build(client, context, f"{repository}:{tag}", pull=pull, progress=progress)
    progress("==> self-test")
    result.test = self_test(client, result.built.image_id, project, progress=progress)
    if not result.test.passed:
        client.images.remove(result.built.reference)
        detail = "\n".join(f"    {m.path or '(root)'}: {m.expected} vs {m.actual}  [{m.reason}]"
                           if hasattr(m, "path") else f"    {m}" for m in result.test.mismatches)
        error = SelfTestFailed(
            "the image does not score the sample: nothing was pushed\n"
            + (f"  differences (expected vs actual):\n{detail}\n" if detail else "")
            + "  container output:\n" + "\n".join("    " + ln for ln in result.test.output.splitlines()[-40:]))
        error.packaged = result  # type: ignore[attr-defined]
        raise error
    progress(f"    passed: {result.test.result.get('functions')} scored the sample in "
             f"{result.test.result.get('elapsed_ms')} ms")
    if split_repository(repository)[0]:
        progress("==> push")
        result.pushed = push(client, repository, tag, username=username, password=password, progress=progress)
    else:
        progress("    (not pushed: --image names no registry host)")
    return result
