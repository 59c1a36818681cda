"""Benchmark `modelfunc package` against the `func init --docker` layout: a warm re-package after a score.py-only
change, and a cold package (empty caches), over a loopback registry and over a shaped link.

One run, on one Docker engine, one base image, one model repo; for each link (``--links``, default both) and each
layout a fresh docker-registry:

a) the model repo is a temporary copy of examples/diabetes-http plus a bigger model file (random float32
   data from a fixed seed, ``model/weights.npy``, default 20 MiB: shipped, not read by score.py) and a line
   naming this run (so no stage image of an earlier run can match), so the model layer weighs what a real
   model does;
b) modelfunc: ``modelfunc package REPO --image REGISTRY/bench/modelfunc --tag t0`` cold (XDG_CACHE_HOME empty:
   no pip cache, lock, environment or dependency layer; no stage image; an empty registry), then one line of
   score.py changes and ``... --tag t1`` runs again: the warm re-package. Both are timed end to end (render,
   layer tars, build, the in-image self-test, push);
c) the layout ``func init --docker`` writes (``COPY requirements.txt /``, ``RUN pip install``,
   ``COPY . /home/site/wwwroot``) over the same rendered app (``modelfunc package --no-build``): built
   with docker-py and pushed as bench/funcinit:t0 cold (its earlier images, and so the classic builder's
   cache, removed; an empty registry), then the same score.py change and build + push as t1, warm. Both
   timed. The local base image has no pip, so a derived base adds a venv (``python3 -m venv /opt/venv``)
   and this machine's CA bundle (the file pip verifies the index with here: PIP_CERT, SSL_CERT_FILE and
   REQUESTS_CA_BUNDLE point at it), built once and not timed (it stands in for the Functions base image,
   which has pip); the pip install step uses host networking and reaches the index this machine's pip
   configuration names (read at run time: no index is named here), with TLS verification on;
d) the shaped link (benchmarks/shapedlink.py): the registry runs in a network namespace behind a veth pair
   on a TEST-NET-2 /30, shaped with tc htb to ``--rate-mbit`` (100) each way, and docker pushes to a relay
   on 127.0.0.1 that adds ``--rtt-ms`` (20) of round trip (no netem here); a link check measures the rate
   and the round trip a client gets through it before the layouts run. 100 Mbit/s and 20 ms: a hosted CI
   runner's uplink to a cloud registry in a nearby region. The namespace, the veth pair and the shaping
   are removed at the end, whatever happens;
e) one table per link and round with the ratios against the goals, and the numbers as JSON (``--json FILE``).

Bytes pushed are what the engine reports for the layers it uploaded (the sum of ``progressDetail.total``
of the layers whose final push status is "Pushed"; modelfunc's --json ``pushed_layers`` is the same
count), next to the growth of the registry's blob store (compressed bytes that arrived).

It is a benchmark, not a test: a missed goal does not fail the run. The exit code is 1 only when a
figure could not be measured. Everything it starts is stopped and everything it builds is removed, but
the base image: when the default local base is missing it is built as the image tests build it
(debootstrap) and kept. With no engine answering, it starts dockerd itself (root only, host networking
only) and stops it at the end.

    .venv/bin/python benchmarks/image_bench.py [--links loopback,shaped] [--rate-mbit 100] [--rtt-ms 20]
        [--base-image IMAGE] [--model-mib 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import httpx
from _common import Children, Unmeasured, closing_lines, progress, publish, start_run
from shapedlink import LinkError, ShapedLink

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXAMPLE = ROOT / "examples" / "diabetes-http"
DEFAULT_BASE = "modelfunc-local/python:3.11-bookworm"

GOAL_BYTES_PCT = 1.0  # modelfunc bytes pushed as % of the model layer

CHANGE = "  # image_bench: a one-line change"
MODEL_FILE = "weights.npy"

# What `func init --docker` writes for Python 3.11 (Azure Functions Core Tools, StaticResources/Dockerfile.python3.11),
# with the FROM line pointing at the derived base; and its .dockerignore.
FUNCINIT_DOCKERFILE = """\
# To enable ssh & remote debugging on app service change the base image to the one below
# FROM mcr.microsoft.com/azure-functions/python:4-python3.11-appservice
FROM {base}

ENV AzureWebJobsScriptRoot=/home/site/wwwroot \\
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true

COPY requirements.txt /
RUN pip install -r /requirements.txt

COPY . /home/site/wwwroot
"""
FUNCINIT_DOCKERIGNORE = "local.settings.json\n"

# The Functions base image has pip on the PATH; the local one has python3 and python3-venv but no pip. pip in the
# build verifies the index's certificate with this machine's CA bundle (CA_BUNDLE in the build context): a mirror or
# proxy this machine trusts is trusted in the build the same way, and verification is never turned off.
CA_BUNDLE = "ca-bundle.crt"
CA_BUNDLE_IN_IMAGE = "/etc/ssl/modelfunc-bench/ca-bundle.crt"
DERIVED_BASE_DOCKERFILE = """\
# Written by benchmarks/image_bench.py: the local base plus pip (in a venv), as the Functions base image has,
# and the CA bundle of the machine that ran the benchmark.
FROM {base}
RUN python3 -m venv /opt/venv
COPY {bundle} {bundle_path}
ENV PATH=/opt/venv/bin:$PATH \\
    PIP_CERT={bundle_path} \\
    SSL_CERT_FILE={bundle_path} \\
    REQUESTS_CA_BUNDLE={bundle_path}{pip_env}
"""


# ---------------------------------------------------------------------------------------------- children


def free_port() -> int:
    from modelfunc.azurite import free_port as _free_port

    return _free_port()


def ping(timeout: int = 5) -> bool:
    import docker

    try:
        docker.from_env(timeout=timeout).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means no engine
        return False


def ensure_engine(children: Children, notes: list[str]) -> None:
    """Use the engine that answers; else start dockerd (root only) with host networking, stopped at the end."""
    if ping():
        return
    dockerd = shutil.which("dockerd")
    if not dockerd or os.geteuid() != 0:
        raise Unmeasured("no Docker engine answers (DOCKER_HOST or /var/run/docker.sock), and this script can "
                         "start dockerd only as root with dockerd installed")
    progress("==> no engine answers: starting dockerd (--bridge=none, no iptables)")
    proc = children.start("dockerd", [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false"],
                          stop_signal=signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unmeasured(f"dockerd exited with {proc.returncode}:\n{children.log_tail('dockerd')}")
        if ping():
            notes.append("dockerd was started by this run (and stopped at its end)")
            return
        time.sleep(0.5)
    raise Unmeasured("dockerd did not answer within 60 s:\n" + children.log_tail("dockerd"))


class Registry:
    """Debian's docker-registry, storage in a temporary directory: on a free 127.0.0.1 port, or, with a shaped
    ``link``, in the link's namespace behind the relay that adds the RTT (docker pushes to the relay's
    127.0.0.1 port, so every byte crosses the shaped veth)."""

    def __init__(self, children: Children, workdir: Path, *, link: ShapedLink | None = None,
                 name: str = "registry", inner_port: int = 5000) -> None:
        self.children, self.workdir, self.link, self.name = children, workdir, link, name
        self.port = free_port()  # the address docker pushes to: the registry's, or the relay's
        self.inner = f"{link.ns_address}:{inner_port}" if link else None
        self.data = workdir / "data"
        self.procs: list[Any] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> Registry:
        exe = shutil.which("docker-registry")
        if not exe:
            raise Unmeasured("docker-registry is not installed (Debian: apt-get install docker-registry)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: "
                          f"{self.data}\nhttp:\n  addr: {self.inner or self.host}\n", encoding="utf-8")
        # On the shaped link the registry and the relay stand for the network and a cloud registry, which do not
        # share the runner's CPUs: they run at a higher priority (nice -10), so a busy machine slows the two
        # layouts' own work, not the link.
        prefix = [*self.link.exec_prefix(), "nice", "-n", "-10"] if self.link else []
        proc = self.children.start(self.name, [*prefix, exe, "serve", str(config)], stop_signal=signal.SIGTERM)
        self.procs.append(proc)
        if self.link:
            self.procs.append(self.children.start(
                f"{self.name}-relay", ["nice", "-n", "-10", sys.executable, str(ROOT / "benchmarks" / "shapedlink.py"),
                                       "proxy", "--listen-port", str(self.port), "--target", self.inner,
                                       "--delay-ms", f"{self.link.rtt_ms:g}"], stop_signal=signal.SIGTERM))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise Unmeasured(f"{self.name} exited with {p.returncode}:\n" + self.children.log_tail(self.name)
                                     + self.children.log_tail(f"{self.name}-relay"))
            try:
                if httpx.get(f"http://{self.host}/v2/", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise Unmeasured(f"docker-registry did not answer within {timeout:.0f} s:\n"
                         + self.children.log_tail(self.name))

    def stop(self) -> None:
        for p in reversed(self.procs):
            self.children.stop(p)
        self.procs.clear()

    def blob_bytes(self) -> int:
        """Bytes in the blob store (compressed layers, configs, manifests): its growth is what was uploaded."""
        blobs = self.data / "docker" / "registry" / "v2" / "blobs"
        return sum(p.stat().st_size for p in blobs.rglob("data") if p.is_file()) if blobs.exists() else 0

    def link_check(self, mib: int = 8) -> dict[str, float]:
        """What a client sees through this registry's address: ms per request (GET /v2/ on a kept connection,
        median of 5) and Mbit/s of a blob upload of ``mib`` MiB (a monolithic PUT)."""
        data = os.urandom(mib * 2**20)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with httpx.Client(base_url=f"http://{self.host}", timeout=120) as http:
            http.get("/v2/")
            rtts = []
            for _ in range(5):
                t = time.perf_counter()
                http.get("/v2/")
                rtts.append(time.perf_counter() - t)
            location = http.post("/v2/linkcheck/blobs/uploads/").headers["location"]
            t = time.perf_counter()
            resp = http.put(f"{location}{'&' if '?' in location else '?'}digest={digest}", content=data,
                            headers={"Content-Type": "application/octet-stream"})
            upload = time.perf_counter() - t
        if resp.status_code != 201:
            raise Unmeasured(f"the link check's upload got HTTP {resp.status_code}: {resp.text[:200]}")
        return {"request_ms": 1000 * sorted(rtts)[2], "upload_mbit_s": len(data) * 8 / upload / 1e6,
                "upload_mib": mib}


# ---------------------------------------------------------------------------------------------- inputs


def make_repo(example: Path, dest: Path, model_mib: float, seed: int) -> Path:
    """A copy of the example with a bigger (incompressible, reproducible) model file in model/."""
    import numpy as np

    shutil.copytree(example, dest, ignore=shutil.ignore_patterns("build", "__pycache__"))
    count = int(model_mib * 2**20) // 4
    weights = np.random.default_rng(seed).standard_normal(count, dtype=np.float32)
    np.save(dest / "model" / MODEL_FILE, weights)
    return dest


def change_one_line(score: Path) -> None:
    """Append a comment to the last non-empty line: one changed line, the same in both copies."""
    lines = score.read_text(encoding="utf-8").splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if line.strip())
    ending = "\n" if lines[last].endswith("\n") else ""
    lines[last] = lines[last].rstrip("\r\n") + CHANGE + ending
    score.write_text("".join(lines), encoding="utf-8")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digests(root: Path, skip: set[str]) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] not in skip and "__pycache__" not in p.parts}


# ---------------------------------------------------------------------------------------------- modelfunc


def run_modelfunc(args: list[str], *, timeout: float, log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m modelfunc ARGS` (``env`` added to this process's); wall seconds and the seconds at which
    each `==> phase` began."""
    cmd = [sys.executable, "-m", "modelfunc", *args]
    marks: list[tuple[float, str]] = []
    lines: list[str] = []
    with open(log, "ab") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                                start_new_session=True, env={**os.environ, **(env or {})})

        def reader() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                lines.append(line)
                out.write(raw)
                if line.startswith("==> "):
                    marks.append((time.perf_counter() - started, line[4:].split()[0].rstrip(",:")))
                    progress("    " + line)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise Unmeasured(f"modelfunc {args[0]} did not finish within {timeout:.0f} s (log: {log})") from None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        wall = time.perf_counter() - started
        thread.join(timeout=10)
    if code != 0:
        tail = "\n".join("    | " + ln for ln in lines[-20:])
        raise Unmeasured(f"modelfunc {args[0]} exited with {code}:\n{tail}")
    phases: dict[str, float] = {}
    bounds = [*marks, (wall, "end")]
    phases["prepare"] = bounds[0][0]
    for (t0, name), (t1, _) in zip(bounds, bounds[1:], strict=False):
        phases[name] = t1 - t0
    return {"wall_s": wall, "phases_s": phases, "stage_reused": any("reusing modelfunc-stage" in ln for ln in lines)}


def short(diff_id: str) -> str:
    """The layer id a push reports: the first 12 hex digits of the layer's diff id."""
    return diff_id.split(":")[-1][:12]


def layer_names(diff_ids: list[str], base_ids: list[str], top: list[str], middle_name: str = "layer"
                ) -> dict[str, str]:
    """Short layer id → a readable name: the base image's layers, then `top` names the image's last layers."""
    if len(diff_ids) < len(base_ids) + len(top) or diff_ids[:len(base_ids)] != base_ids:
        return {}  # not the expected layout: the push's ids are shown as they are
    names = {short(d): "base" if len(base_ids) == 1 else f"base {i + 1}" for i, d in enumerate(base_ids)}
    middle = diff_ids[len(base_ids):len(diff_ids) - len(top)]
    names.update({short(d): middle_name if len(middle) == 1 else f"{middle_name} {i + 1}"
                  for i, d in enumerate(middle)})
    names.update({short(d): name for d, name in zip(diff_ids[len(diff_ids) - len(top):], top, strict=True)})
    return names


def modelfunc_package(repo: Path, out: Path, registry: Registry, tag: str, base: str, base_ids: list[str], *,
                      timeout: float, log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    json_file = log.parent / f"modelfunc-{registry.port}-{tag}.json"
    timing = run_modelfunc(["package", str(repo), "--out", str(out), "--image", f"{registry.host}/bench/modelfunc",
                            "--tag", tag, "--base-image", base, "--json", str(json_file)], timeout=timeout, log=log,
                           env=env)
    data = json.loads(json_file.read_text(encoding="utf-8"))
    if "pushed_layers" not in data:
        raise Unmeasured(f"modelfunc package --json has no pushed_layers ({json_file}): was the image pushed?")
    ours = ["dependencies", "model", "code"]
    if "ADD layers/dependencies.tar" not in (out / "Dockerfile").read_text(encoding="utf-8"):
        ours[0] = "dependencies (pip install in the build)"
    names = layer_names(data.get("diff_ids") or [], base_ids, ours)
    pushed = {k: int(v) for k, v in data["pushed_layers"].items()}
    return {**timing, "reference": data.get("reference"), "digest": data.get("digest"),
            "image_tag": data.get("tag") or f"{registry.host}/bench/modelfunc:{tag}",
            "self_test_passed": (data.get("self_test") or {}).get("passed"),
            "pushed_layers": {names.get(k, k): v for k, v in pushed.items()},
            "existing_layers": [names.get(k, k) for k in data.get("existing_layers", [])],
            "bytes_pushed": sum(pushed.values()), "diff_ids": data.get("diff_ids") or []}


# ---------------------------------------------------------------------------------------------- func init layout


def build_image(client: Any, context: Path, tag: str, *, network: str) -> dict[str, Any]:
    """docker-py (classic builder) build; the image id, the steps served from the cache, the log."""
    log: list[str] = []
    image_id, step = None, ""
    try:
        for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                                      network_mode=network):
            for line in chunk.get("stream", "").splitlines():
                if line.strip():
                    log.append(line)
                    if line.startswith("Step "):
                        step = line
            if "ID" in chunk.get("aux", {}):
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                raise Unmeasured(f"building {tag} failed at {step or 'the start'}: {chunk['error'].strip()}\n"
                                 + "\n".join("    | " + ln for ln in log[-15:]))
    except Unmeasured:
        raise
    except Exception as e:  # noqa: BLE001 - docker-py APIError, connection errors, read timeouts
        raise Unmeasured(f"building {tag} failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    if image_id is None:
        raise Unmeasured(f"building {tag} ended without an image id:\n" + "\n".join(log[-15:]))
    return {"image_id": image_id, "cached_steps": sum("Using cache" in ln for ln in log), "log": log}


def push_image(client: Any, repository: str, tag: str) -> dict[str, Any]:
    """Push; per layer its final status and the largest progressDetail.total seen while pushing."""
    layers: dict[str, dict[str, Any]] = {}
    digest = None
    try:
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise Unmeasured(f"pushing {repository}:{tag} failed: {chunk['error'].strip()[:300]}")
            layer, status = chunk.get("id"), chunk.get("status", "")
            if layer and status and not status.startswith(tag + ":"):
                entry = layers.setdefault(layer, {"status": status, "total": 0})
                entry["status"] = status
                total = (chunk.get("progressDetail") or {}).get("total")
                if status == "Pushing" and total:
                    entry["total"] = max(entry["total"], int(total))
            if "Digest" in (chunk.get("aux") or {}):
                digest = chunk["aux"]["Digest"]
    except Unmeasured:
        raise
    except Exception as e:  # noqa: BLE001 - docker-py/requests errors talking to the engine
        raise Unmeasured(f"pushing {repository}:{tag} failed: {type(e).__name__}: {str(e)[:300]}") from None
    if not digest:
        raise Unmeasured(f"the push of {repository}:{tag} ended without a manifest digest")
    pushed = {k: v["total"] for k, v in layers.items() if v["status"] == "Pushed"}
    return {"digest": digest, "pushed_layers": pushed, "bytes_pushed": sum(pushed.values()),
            "existing_layers": [k for k, v in layers.items() if v["status"] != "Pushed"],
            "final_status": {k: v["status"] for k, v in layers.items()}}


def funcinit_round(client: Any, context: Path, registry: Registry, tag: str, base_ids: list[str]) -> dict[str, Any]:
    repository = f"{registry.host}/bench/funcinit"
    started = time.perf_counter()
    built = build_image(client, context, f"{repository}:{tag}", network="host")
    build_s = time.perf_counter() - started
    pushed = push_image(client, repository, tag)
    wall = time.perf_counter() - started
    image = client.images.get(built["image_id"])
    diff_ids = image.attrs["RootFS"]["Layers"]
    names = layer_names(diff_ids, base_ids, ["COPY requirements.txt", "RUN pip install", "COPY . /home/site/wwwroot"],
                        "venv (derived base)")
    return {"wall_s": wall, "phases_s": {"build": build_s, "push": wall - build_s},
            "image_tag": f"{repository}:{tag}", "digest": pushed["digest"], "cached_steps": built["cached_steps"],
            "pushed_layers": {names.get(k, k): v for k, v in pushed["pushed_layers"].items()},
            "existing_layers": [names.get(k, k) for k in pushed["existing_layers"]],
            "bytes_pushed": pushed["bytes_pushed"]}


# The pip settings --pip-env may add: where the index is and how long to wait for it. Nothing that changes how
# pip verifies the index's certificate (the CA bundle is this machine's, see ca_bundle()).
PIP_ENV_NAMES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_DEFAULT_TIMEOUT", "PIP_TIMEOUT", "PIP_RETRIES",
                 "PIP_PROXY", "PIP_NO_CACHE_DIR", "PIP_PREFER_BINARY", "PIP_ONLY_BINARY")


def pip_config() -> dict[str, str]:
    """This machine's pip configuration (its files and PIP_* variables), as `pip config list` reads it: key -> value."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    config: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            # ":env:.index-url" (a PIP_* variable) wins over "global.index-url" (a file), as in pip.
            key = name.split(".", 1)[-1]
            if name.startswith(":env:.") or key not in config:
                config[key] = value.strip().strip("'\"")
    return config


def pip_env_for_build(explicit: list[str], config: dict[str, str] | None = None) -> dict[str, str]:
    """PIP_* settings baked into the derived base so that `pip install` in the build reaches the index.

    The index and extra indexes come from this machine's pip configuration at run time (nothing here names
    one); only http(s) ones mean something inside the container: local paths (find-links, file:// indexes,
    constraint files) do not exist there and are left out.
    """
    config = pip_config() if config is None else config
    env: dict[str, str] = {}
    for key, name in (("index-url", "PIP_INDEX_URL"), ("extra-index-url", "PIP_EXTRA_INDEX_URL")):
        words = [w for w in config.get(key, "").split() if w.startswith(("http://", "https://"))]
        if words:
            env[name] = " ".join(words)
    for pair in explicit:
        name, sep, value = pair.partition("=")
        if not sep or name not in PIP_ENV_NAMES:
            raise SystemExit(f"--pip-env {pair!r}: expected NAME=VALUE with NAME one of {', '.join(PIP_ENV_NAMES)}")
        env[name] = value
    return env


def ca_bundle(config: dict[str, str] | None = None) -> Path:
    """The CA bundle pip on this machine verifies the index with: pip's `cert` setting (PIP_CERT or a pip
    configuration file), else REQUESTS_CA_BUNDLE / SSL_CERT_FILE, else the system's OpenSSL bundle, else certifi's."""
    import ssl

    config = pip_config() if config is None else config
    paths = ssl.get_default_verify_paths()
    candidates = [config.get("cert"), os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"),
                  paths.cafile, paths.openssl_cafile]
    try:
        import certifi

        candidates.append(certifi.where())
    except ImportError:
        from pip._vendor import certifi

        candidates.append(certifi.where())
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise Unmeasured("no CA bundle found for the derived base (pip's cert setting, REQUESTS_CA_BUNDLE, "
                     "SSL_CERT_FILE, OpenSSL's default file, certifi)")


PROBE = ["pip", "index", "versions", "--retries", "0", "--timeout", "30", "pip"]


def probe_pip(client: Any, image: str, timeout: float) -> tuple[bool, str]:
    """Can pip in the image reach the package index (host networking, as the func-init build has)?"""
    container = client.containers.run(image, PROBE, network_mode="host", detach=True)
    try:
        try:
            code = container.wait(timeout=timeout).get("StatusCode", 1)
        except Exception:  # noqa: BLE001 - the engine's read timeout
            container.kill()
            code = None
        output = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    return code == 0, output


def derived_base(client: Any, base: str, tag: str, pip_env: dict[str, str], bundle: Path, work: Path) -> None:
    """Build the base plus a venv with pip and this machine's CA bundle; make sure pip reaches the index from
    inside a build, verifying its certificate."""
    context = work / "funcinit-base"
    context.mkdir(exist_ok=True)
    shutil.copyfile(bundle, context / CA_BUNDLE)
    env_lines = "".join(f" \\\n    {k}={json.dumps(v)}" for k, v in sorted(pip_env.items()))
    (context / "Dockerfile").write_text(DERIVED_BASE_DOCKERFILE.format(base=base, bundle=CA_BUNDLE,
                                                                       bundle_path=CA_BUNDLE_IN_IMAGE,
                                                                       pip_env=env_lines), encoding="utf-8")
    image_id = build_image(client, context, tag, network="none")["image_id"]
    ok, output = probe_pip(client, tag, timeout=120)
    if ok:
        return
    with contextlib.suppress(Exception):
        client.images.remove(image_id, force=True)
    tail = "\n".join("    | " + ln for ln in output.splitlines()[-10:])
    hint = (f"the index's certificate is not signed by a CA in {bundle} (this machine's CA bundle): point pip's "
            "cert setting (PIP_CERT) at the bundle that verifies it" if "CERTIFICATE_VERIFY_FAILED" in output
            else "pass the settings it needs with --pip-env NAME=VALUE")
    raise Unmeasured(f"pip in the derived base cannot reach the package index ({' '.join(PROBE)}):\n{tail}\n{hint}")


# ---------------------------------------------------------------------------------------------- report


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over `seconds` (Linux /proc/stat), to flag a machine that is not quiet."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + (values[4] if len(values) > 4 else 0)

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def human(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + suffix


def verdict(ok: bool | None) -> str:
    return "NOT MEASURED" if ok is None else "met" if ok else "NOT MET"


SCENARIOS = (  # (link, round, goal for modelfunc / func-init seconds or None)
    ("loopback", "warm", 1.0), ("loopback", "cold", None), ("shaped", "warm", 0.5), ("shaped", "cold", 1.0))


def ratio_of(results: dict[str, Any], link: str, rnd: str) -> float | None:
    side = results["links"].get(link) or {}
    mf, fi = (side.get("modelfunc") or {}).get(rnd) or {}, (side.get("funcinit") or {}).get(rnd) or {}
    return mf["wall_s"] / fi["wall_s"] if mf.get("wall_s") and fi.get("wall_s") else None


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for link, rnd, goal in SCENARIOS:
        if link not in results["config"]["links"]:
            continue
        ratio = ratio_of(results, link, rnd)
        what = "warm re-package after a score.py change" if rnd == "warm" else "cold package (empty caches)"
        out.append({"name": f"{what}, {link}: modelfunc / func-init s", "value": ratio,
                    "display": fmt(ratio, ".2f", "x"), "target": f"<= {goal:g}x" if goal else "(none)",
                    "result": verdict(None if ratio is None else ratio <= goal) if goal else "(reported)"})
    first = results["config"]["links"][0]
    mf = ((results["links"].get(first) or {}).get("modelfunc") or {}).get("warm") or {}
    model = results.get("model_layer", {}).get("tar_bytes")
    pct = 100 * mf["bytes_pushed"] / model if "bytes_pushed" in mf and model else None
    out.append({"name": "warm: modelfunc bytes pushed, % of the model layer", "value": pct,
                "display": fmt(pct, ".3f", " %"), "target": f"<= {GOAL_BYTES_PCT:g} %",
                "result": verdict(None if pct is None else pct <= GOAL_BYTES_PCT)})
    return out


def render(results: dict[str, Any]) -> str:
    cfg = results["config"]
    link = results.get("link") or {}
    lines = [f"engine: Docker {results.get('engine', 'n/a')}, classic builder (docker-py); "
             f"base image {cfg['base_image']}; registry: docker-registry, a fresh one for each layout and link",
             f"model repo: {cfg['example']} + model/{MODEL_FILE} ({human(cfg['model_file_bytes'])}, "
             f"seed {cfg['seed']}); change: one score.py line gets a comment; same app files on both sides: "
             f"{ {True: 'yes', False: 'NO'}.get(results.get('same_app'), 'n/a') }"]
    if link:
        check = link.get("check") or {}
        lines.append(f"shaped link: {link.get('description', 'n/a')}; measured through it: "
                     f"{fmt(check.get('upload_mbit_s'), '.1f')} Mbit/s upload ({check.get('upload_mib', '?')} MiB), "
                     f"{fmt(check.get('request_ms'), '.1f')} ms per request")
    lines.append(f"load: {results['machine'].get('loadavg', 'n/a')} (1/5/15 min) before, "
                 f"{results['machine'].get('loadavg_after', 'n/a')} after; 2 cores shared")
    w0, w1 = 46, 20
    for name in cfg["links"]:
        side = results["links"].get(name) or {}
        for rnd in ("warm", "cold"):
            mf = (side.get("modelfunc") or {}).get(rnd) or {}
            fi = (side.get("funcinit") or {}).get(rnd) or {}
            title = {"warm": "warm re-package after a score.py change", "cold": "cold package (empty caches)"}[rnd]
            lines += ["", f"{f'{title}, {name}':{w0}}{'modelfunc package':>{w1}}{'func init --docker':>{w1}}"]

            def phases(r: dict[str, Any], names: tuple[str, ...]) -> str:
                p = r.get("phases_s") or {}
                return " / ".join(fmt(p.get(n), ".1f") if n in p else "-" for n in names) if p else "n/a"

            def layers(r: dict[str, Any]) -> str:
                return f"{len(r['pushed_layers'])} / {len(r['existing_layers'])}" if "pushed_layers" in r else "n/a"

            rows = [
                ("wall time (s)", fmt(mf.get("wall_s"), ".2f"), fmt(fi.get("wall_s"), ".2f")),
                ("  prepare / build / self-test / push (s)", phases(mf, ("prepare", "build", "self-test", "push")),
                 phases(fi, ("prepare", "build", "self-test", "push"))),
                ("bytes pushed (engine's count)", human(mf.get("bytes_pushed")), human(fi.get("bytes_pushed"))),
                ("registry growth (compressed)", human(mf.get("registry_growth_bytes")),
                 human(fi.get("registry_growth_bytes"))),
                ("layers pushed / already there", layers(mf), layers(fi)),
                ("reused from caches", "-" if not mf else {True: "stage image", False: "nothing (built)"}.get(
                    mf.get("stage_reused"), "n/a"),
                 "-" if not fi else f"{fi.get('cached_steps', 'n/a')} build steps"),
            ]
            lines += [f"{label:{w0}}{a:>{w1}}{b:>{w1}}" for label, a, b in rows]
    model = results.get("model_layer", {})
    lines.append(f"\n{'model layer (build/layers/model.tar)':{w0}}{human(model.get('tar_bytes')):>{w1}}")
    lines.extend(closing_lines(results, 58, 10, 10))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def base_layers(client: Any, base: str, notes: list[str]) -> list[str]:
    """The base image's diff ids; the local default base is built first (as the image tests do) when missing."""
    import docker

    try:
        return client.images.get(base).attrs["RootFS"]["Layers"]
    except docker.errors.ImageNotFound:
        if base != DEFAULT_BASE:
            raise Unmeasured(f"the base image {base} is not in the engine's store: pull or build it first") from None
    progress(f"==> {base} is not in the engine's store: building it (tests' ensure_base_image, debootstrap)")
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from support.engine import ensure_base_image  # the test-suite's helper: Debian bookworm + python3
    finally:
        del sys.path[0]
    reason = ensure_base_image()
    if reason:
        raise Unmeasured(f"the base image {base} is missing and could not be built: {reason}")
    notes.append(f"the base image {base} was built by this run (debootstrap) and is kept, as the tests keep it")
    return client.images.get(base).attrs["RootFS"]["Layers"]


class Run:
    """What one benchmark run shares: the engine, the base, the inputs, the images it made (removed at the end)."""

    def __init__(self, args: argparse.Namespace, client: Any, children: Children, work: Path,
                 results: dict[str, Any]) -> None:
        self.args, self.client, self.children, self.work, self.results = args, client, children, work, results
        self.base_ids = base_layers(client, args.base_image, results["notes"])
        self.log = work / "logs" / "modelfunc.log"
        self.created: list[str] = []  # image references this run made
        self.stages: set[str] = set()  # modelfunc-stage tags of this run's model
        self.registries = 0
        self.derived = f"modelfunc-bench/funcinit-base:{os.getpid()}"

    def registry(self, link: ShapedLink | None, name: str) -> Registry:
        self.registries += 1
        return Registry(self.children, self.work / f"registry-{name}", link=link, name=f"registry-{name}",
                        inner_port=5000 + self.registries).start()

    def forget(self, refs: list[str]) -> None:
        for ref in refs:
            with contextlib.suppress(Exception):
                self.client.images.remove(ref, force=True)  # untagged parents go too (noprune=False)

    def note_stages(self, diff_ids: list[str]) -> None:
        """The stage images of this run's model: those whose layers are the image's but its last (the code)."""
        for image in self.client.images.list(name="modelfunc-stage"):
            if image.attrs["RootFS"]["Layers"] == diff_ids[:-1]:
                self.stages.update(t for t in image.tags if t.startswith("modelfunc-stage:"))

    def forget_all(self) -> None:
        self.forget(list(reversed(self.created)) + sorted(self.stages))
        self.forget([self.derived])


def measure_modelfunc(run: Run, link: ShapedLink | None, name: str, repo: Path) -> dict[str, Any]:
    """Cold (empty caches, fresh registry), then warm after the score.py change; both timed."""
    out = {}
    registry = run.registry(link, f"{name}-modelfunc")
    try:
        image = f"{registry.host}/bench/modelfunc"
        run.created.extend([f"{image}:t0", f"{image}:t1"])
        cache = run.work / f"cache-{name}"  # XDG_CACHE_HOME: modelfunc's pip cache, locks, envs, dependency layers
        run.forget(sorted(run.stages))  # the stage image (base | dependencies | model) of an earlier round
        env = {"XDG_CACHE_HOME": str(cache)}
        progress(f"==> [{name}] modelfunc package --tag t0: cold (empty caches, fresh registry), timed")
        before = registry.blob_bytes()
        cold = modelfunc_package(repo, repo / "build", registry, "t0", run.args.base_image, run.base_ids,
                                 timeout=run.args.timeout, log=run.log, env=env)
        cold["registry_growth_bytes"] = registry.blob_bytes() - before
        run.note_stages(cold["diff_ids"])
        out["cold"] = cold
        run.results["model_layer"] = {"tar_bytes": (repo / "build" / "layers" / "model.tar").stat().st_size}
        progress(f"    {cold['wall_s']:.2f} s, pushed {human(cold['bytes_pushed'])}")
        change_one_line(repo / "score.py")
        progress(f"==> [{name}] modelfunc package --tag t1: warm, after the score.py change, timed")
        before = registry.blob_bytes()
        warm = modelfunc_package(repo, repo / "build", registry, "t1", run.args.base_image, run.base_ids,
                                 timeout=run.args.timeout, log=run.log, env=env)
        warm["registry_growth_bytes"] = registry.blob_bytes() - before
        out["warm"] = warm
        progress(f"    {warm['wall_s']:.2f} s, pushed {human(warm['bytes_pushed'])} "
                 f"({', '.join(warm['pushed_layers'])})")
        if not warm["self_test_passed"]:
            raise Unmeasured("t1: the self-test did not pass")
    finally:
        registry.stop()
    return out


def measure_funcinit(run: Run, link: ShapedLink | None, name: str, context: Path) -> dict[str, Any]:
    """The func init --docker layout: cold (its images and their builder cache removed, fresh registry), then
    warm after the same score.py change; both timed."""
    out = {}
    registry = run.registry(link, f"{name}-funcinit")
    try:
        repository = f"{registry.host}/bench/funcinit"
        run.forget([r for r in run.created if "/bench/funcinit:" in r])  # the builder cache of an earlier round
        run.created.extend([f"{repository}:t0", f"{repository}:t1"])
        progress(f"==> [{name}] func-init layout t0: cold (pip install in the build, fresh registry), timed")
        before = registry.blob_bytes()
        cold = funcinit_round(run.client, context, registry, "t0", run.base_ids)
        cold["registry_growth_bytes"] = registry.blob_bytes() - before
        out["cold"] = cold
        progress(f"    {cold['wall_s']:.2f} s, pushed {human(cold['bytes_pushed'])}")
        change_one_line(context / "score.py")
        progress(f"==> [{name}] func-init layout t1: warm, after the same score.py change, timed")
        before = registry.blob_bytes()
        warm = funcinit_round(run.client, context, registry, "t1", run.base_ids)
        warm["registry_growth_bytes"] = registry.blob_bytes() - before
        out["warm"] = warm
        progress(f"    {warm['wall_s']:.2f} s, pushed {human(warm['bytes_pushed'])} "
                 f"({', '.join(warm['pushed_layers'])})")
    finally:
        registry.stop()
    return out


def measure_link(run: Run, link: ShapedLink | None, name: str) -> None:
    results = run.results
    side = results["links"].setdefault(name, {})
    repo = make_repo(run.args.example.resolve(), run.work / f"repo-{name}", run.args.model_mib, run.args.seed)
    (repo / "model" / "bench-run.txt").write_text(f"{run.work.name}\n", encoding="utf-8")  # this run's model only
    context = run.work / f"funcinit-{name}"
    shutil.copytree(run.work / "rendered" / "app", context)
    (context / "Dockerfile").write_text(FUNCINIT_DOCKERFILE.format(base=run.derived), encoding="utf-8")
    (context / ".dockerignore").write_text(FUNCINIT_DOCKERIGNORE, encoding="utf-8")
    try:
        side["modelfunc"] = measure_modelfunc(run, link, name, repo)
    except Unmeasured as e:
        results["unmeasured"].append(f"{name}, modelfunc: {e}")
    try:
        side["funcinit"] = measure_funcinit(run, link, name, context)
    except Unmeasured as e:
        results["unmeasured"].append(f"{name}, func-init layout: {e}")
    if side.get("modelfunc", {}).get("warm") and side.get("funcinit", {}).get("warm"):
        same = tree_digests(repo / "build" / "app", set()) == tree_digests(context, {"Dockerfile", ".dockerignore"})
        results["same_app"] = same and results.get("same_app", True)


def prepare_funcinit(run: Run) -> None:
    """The app both layouts ship (`modelfunc package --no-build`, warm caches, not timed) and the derived base."""
    progress("==> modelfunc package --no-build (the app for the func-init layout, not timed)")
    repo = make_repo(run.args.example.resolve(), run.work / "repo-render", run.args.model_mib, run.args.seed)
    (repo / "model" / "bench-run.txt").write_text(f"{run.work.name}\n", encoding="utf-8")
    run_modelfunc(["package", str(repo), "--out", str(run.work / "rendered"), "--no-build"],
                  timeout=run.args.timeout, log=run.log)
    progress(f"==> derived base {run.derived}: {run.args.base_image} + python3 -m venv /opt/venv (not timed)")
    config = pip_config()
    pip_env, bundle = pip_env_for_build(run.args.pip_env, config), ca_bundle(config)
    derived_base(run.client, run.args.base_image, run.derived, pip_env, bundle, run.work)
    notes = run.results["notes"]
    notes.append(f"the derived base carries this machine's CA bundle ({bundle}; PIP_CERT, SSL_CERT_FILE "
                 "and REQUESTS_CA_BUNDLE point at it): pip in the build verifies the index's certificate")
    if pip_env:
        notes.append("pip settings baked into the derived base for the func-init build (from this machine's pip "
                     "configuration and --pip-env): " + ", ".join(f"{k}={v}" for k, v in sorted(pip_env.items())))


def explain(results: dict[str, Any]) -> None:
    """Notes saying what each side did in its timed runs, and what 'cold' emptied."""
    notes = results["notes"]
    notes.append("warm = the second run, after one score.py line changed: modelfunc's whole `modelfunc package` "
                 "command (render, cached dependencies layer, layer tars, build, in-image self-test, push); "
                 "func-init's docker-py build of func init's Dockerfile + push (its image is not tested)")
    notes.append("cold empties, for modelfunc: XDG_CACHE_HOME (its pip cache, locks, installed environments and "
                 "dependency layer tars: dependencies are downloaded from the index and installed again), the "
                 "stage image (base | dependencies | model: built again) and the registry (a new, empty one: "
                 "every layer uploaded); for func-init: its images, and with them the classic builder's cache "
                 "(the builder caches steps as intermediate images; docker-py builds do not use BuildKit, so "
                 "`docker builder prune` would empty nothing they use): pip install runs again against the index, "
                 "and a new, empty registry. Kept on both sides: the base image (and func-init's derived base "
                 "with pip, which stands in for the Functions base image); both sides reach the package index "
                 "the same way, not over the shaped link")
    notes.append("'reused from caches': for modelfunc whether the stage image (base | dependencies | model) was "
                 "reused; for func-init the Dockerfile steps the classic builder took from its cache")
    notes.append("modelfunc's phases: prepare = render, lock, layer tars; build = the stage image's check (or build, "
                 "cold) and the code layer's build; self-test = the in-image self-test, before the push; "
                 "func-init has no prepare and no self-test")
    notes.append("bytes pushed = sum of progressDetail.total of the layers the engine reports as Pushed "
                 "(uncompressed); registry growth = new bytes in the registry's blob store (compressed)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--base-image", default=DEFAULT_BASE, help="base image of both layouts (in the engine's store)")
    p.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE, help="model repo to copy")
    p.add_argument("--model-mib", type=float, default=20.0, help="size of the added model file")
    p.add_argument("--seed", type=int, default=0, help="seed of the added model file's random data")
    p.add_argument("--links", default="loopback,shaped", help="which registry links to measure, in order")
    p.add_argument("--rate-mbit", type=float, default=100.0, help="the shaped link's rate, each way")
    p.add_argument("--rtt-ms", type=float, default=20.0, help="the shaped link's round-trip time")
    p.add_argument("--pip-env", action="append", default=[], metavar="PIP_NAME=VALUE",
                   help="extra pip setting for the func-init build's pip install (baked into the derived base): "
                   "the index, timeouts, a proxy; " + ", ".join(PIP_ENV_NAMES))
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed for each package/build/push")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, contexts, registry)")
    args = p.parse_args(argv)
    if args.model_mib <= 0:
        p.error("--model-mib must be > 0")
    args.links = [x.strip() for x in args.links.split(",") if x.strip()]
    if not args.links or set(args.links) - {"loopback", "shaped"}:
        p.error("--links: a comma-separated list of loopback and shaped")
    if args.rate_mbit <= 0 or args.rtt_ms < 0:
        p.error("--rate-mbit must be > 0 and --rtt-ms >= 0")
    return args


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work, children = start_run("image-bench-")
    notes: list[str] = []
    unmeasured: list[str] = []
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg": loadavg()},
        "config": {"base_image": args.base_image, "example": str(args.example.resolve()), "model_file_bytes": None,
                   "seed": args.seed, "timeout_s": args.timeout, "links": args.links,
                   "rate_mbit": args.rate_mbit, "rtt_ms": args.rtt_ms},
        "links": {}, "model_layer": {}, "notes": notes, "unmeasured": unmeasured,
    }
    client = run = link = None
    interrupted = False
    try:
        busy = cpu_busy()
        results["machine"]["cpu_busy_before"] = busy
        if busy is not None and busy > 0.15:
            notes.append(f"the machine was not idle before the run ({busy:.0%} of the CPUs busy): "
                         "the times are longer and noisier than on a quiet machine")
        ensure_engine(children, notes)
        import docker

        client = docker.from_env(timeout=int(args.timeout))
        results["engine"] = client.version().get("Version")
        run = Run(args, client, children, work, results)
        prepare_funcinit(run)
        results["config"]["model_file_bytes"] = (work / "repo-render" / "model" / MODEL_FILE).stat().st_size
        for name in args.links:
            if name == "loopback":
                measure_link(run, None, name)
                continue
            link = ShapedLink(args.rate_mbit, args.rtt_ms)  # set before up(): the finally removes a half-made link
            try:
                link.up()
            except LinkError as e:
                link.down()
                link = None
                unmeasured.append(f"shaped link: {e}")
                continue
            results["link"] = {"description": link.describe()}
            progress(f"==> shaped link: {link.describe()}")
            check = run.registry(link, "linkcheck")
            try:
                results["link"]["check"] = check.link_check()
            finally:
                check.stop()
            progress(f"    measured: {results['link']['check']}")
            measure_link(run, link, name)
            results["link"]["qdisc"] = link.qdisc_stats()
            link.down()
            link = None
        explain(results)
    except KeyboardInterrupt:
        interrupted = True
        unmeasured.append("interrupted")
    except Unmeasured as e:
        unmeasured.append(str(e))
    except Exception as e:  # noqa: BLE001
        unmeasured.append(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        if run is not None:
            run.forget_all()
        if client is not None:
            client.close()
        children.stop_all()  # the registries and relays first: nothing runs in the namespace when it goes
        if link is not None:
            link.down()
        results["machine"]["loadavg_after"] = loadavg()
        results["goals"] = goals(results)
        publish(results, render(results), args.json)
        if args.keep or (unmeasured and not interrupted):
            print(f"logs and contexts: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        return 130
    return 1 if unmeasured or any(g["result"] == "NOT MEASURED" for g in results["goals"]) else 0


if __name__ == "__main__":
    sys.exit(main())
