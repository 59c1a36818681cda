"""The container image: the docker-py build of the build context (buildcontext.py), an in-image self-test, the
push; and ``package``, the whole path: the app (appgen) and its build context written into one staging folder
(staging.py) that replaces the previous output, then build, self-test and push.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .buildcontext import LAYERS, SCRIPT_ROOT, SITE_PACKAGES, Context, prepare_context
from .config import Project
from .errors import ImageError, SelfTestFailed  # noqa: F401 - image.SelfTestFailed, as before
from .imageref import check_base_image, check_reference, split_repository
from .progress import Progress, quiet
from .runtime.modelfunc_runtime import SELFTEST_MARK
from .samples import load_expected
from .sourcedir import SourceFiles

SELFTEST_DIR = "/modelfunc-selftest"


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


def build(client: Any, context: Context, reference: str, *, pull: bool = True, progress: Progress = quiet) -> Built:
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


def self_test(client: Any, image_id: str, project: Project, *, timeout: float = 300, label: str = "",
              progress: Progress = quiet) -> SelfTest:
    """Run the image with the entrypoint overridden: import the app, init(), score the sample, compare."""
    from .compare import compare

    sample = project.sample_input
    progress(f"self-test: scoring {sample.name} inside the image (no network): run() directly, then through the "
             f"app's function {project.trigger.function_name}")
    container = client.containers.run(
        image_id, entrypoint=["python3", "-m", "modelfunc_runtime", "selftest", f"{SELFTEST_DIR}/{sample.name}",
                              project.trigger.function_name],
        working_dir=f"/{SCRIPT_ROOT}", network_mode="none", detach=True,
        labels={"modelfunc.self-test": label or image_id},  # which image it tested, for `docker ps --filter`
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


def push(client: Any, repository: str, tag: str, *, username: str | None = None, password: str | None = None,
         progress: Progress = quiet) -> Pushed:
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
    countdown: dict[str, int] = {}  # a layer's last "Retrying in N seconds", which the engine sends every second
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
            elif status.startswith("Retrying in") and layer:
                # The engine retries a failed upload after a pause that grows (dockerd's --max-upload-attempts,
                # 5 by default: 5 + 10 + 15 + 20 s); each pause's first second is shown, not a silent wait.
                seconds = int("".join(c for c in status if c.isdigit()) or 0)
                if seconds > countdown.get(layer, 0):
                    progress(f"  {layer}: the upload failed; the engine retries in {seconds} s")
                countdown[layer] = seconds
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
        lockfile = self.app_dir / "requirements.lock"  # appenv.LOCK_NAME
        if lockfile.is_file():
            from .appenv import read_lock

            lock = read_lock(lockfile)
            data["lock"] = {"path": str(lockfile), "python_version": lock.python_version, "digest": lock.digest,
                            "packages": lock.versions(), "notes": lock.notes}
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


def _check_locked_versions(result: Packaged, client: Any, progress: Progress) -> None:
    """The image imports exactly the locked versions: read inside the container by the self-test, compared with
    the lock the dependencies layer was installed from. A difference removes the image: nothing is pushed."""
    from . import appenv

    lockfile = result.app_dir / appenv.LOCK_NAME
    if not lockfile.is_file() or result.test is None:
        return
    lock = appenv.read_lock(lockfile)
    problems = appenv.compare(lock, {"image": result.test.result.get("environment") or {}})
    if problems:
        client.images.remove(result.built.reference)
        error = SelfTestFailed("the image does not import the locked versions: nothing was pushed\n  "
                               + "\n  ".join(problems))
        error.packaged = result  # type: ignore[attr-defined]
        raise error
    progress(f"    the image imports the {len(lock.packages)} locked packages at their locked versions")


def package(project: Project, out: Path | None = None, *, build_image: bool = True, base_image: str | None = None,
            repository: str | None = None, tag: str | None = None, username: str | None = None,
            password: str | None = None, cache_dir: Path | None = None, refresh: bool = False,
            pull: bool = True, progress: Progress = quiet) -> Packaged:
    """Render the app and its build context; then build, self-test and (with a registry host) push.

    A failing self-test raises SelfTestFailed (with ``.packaged``) after removing the image: nothing is pushed.
    """
    from . import appgen
    from .staging import staged

    check_reference(repository, tag)
    if base_image is not None:
        check_base_image(base_image)
    plan = appgen.prepare_app(project, out, progress=progress)
    with staged(plan.out_dir, progress) as staging:  # a failure before the swap leaves the previous output as it was
        appgen.write_app(plan, staging)
        staged_context = prepare_context(project, staging, base_image=base_image, cache_dir=cache_dir,
                                         refresh=refresh, progress=progress)
        client = engine() if build_image else None  # every input is checked; without an engine nothing is replaced
    rendered = plan.result()
    context = Context(rendered.out_dir, rendered.out_dir / "Dockerfile", staged_context.layers,
                      staged_context.deps_in_build)
    result = Packaged(rendered.app_dir, context, rendered.source, rendered=rendered)
    if client is None:
        return result
    repository = repository or f"modelfunc/{project.name.lower()}"
    tag = tag or git_tag(project.root) or content_tag(context)
    progress(f"==> build {repository}:{tag}")
    result.built = build(client, context, f"{repository}:{tag}", pull=pull, progress=progress)
    progress("==> self-test")
    result.test = self_test(client, result.built.image_id, project, label=result.built.reference, progress=progress)
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
    _check_locked_versions(result, client, progress)
    if split_repository(repository)[0]:
        progress("==> push")
        result.pushed = push(client, repository, tag, username=username, password=password, progress=progress)
    else:
        progress("    (not pushed: --image names no registry host)")
    return result
