"""Faults, each on the real part: Azurite stopped during a blob-test, the registry stopped during a push,
the local host restarted (gracefully, and killed) in the middle of a stream of blobs.

Elsewhere: Redis stopped while serving —
tests/host/test_cache.py::test_redis_stopped_and_restarted_mid_run_fails_no_request (and a hung Redis, a wrong
password); a blob that makes run() raise —
tests/host/test_blob.py::test_blob_that_makes_run_raise_leaves_an_error_record (an error record, no retries), and
here again across a restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from modelfunc.azurite import Azurite
from support.core import Hosts
from support.engine import BASE_IMAGE, Registry

STREAM_SCORE = '''\
"""Scores {"id": ...} blobs slowly, and records every run() in $SCORED_LOG (to count double scoring)."""
import json
import os
import re
import time


def init():
    pass


def run(data):
    doc = json.loads(data)
    if doc.get("boom"):
        raise ValueError("this blob makes run() raise")
    with open(os.environ["SCORED_LOG"], "a") as f:
        f.write(doc["id"] + "\\n")
    time.sleep(0.05)
    return {"id": doc["id"], "ok": True}
'''


def blob_repo(example, tag: str) -> Path:  # noqa: ANN001
    repo = example("diabetes-blob")
    (repo / "modelfunc.yaml").write_text(
        f"trigger:\n  type: blob\n  input_path: in-{tag}/{{blobname}}.json\n"
        f"  output_path: out-{tag}/{{blobname}}_out.json\n  error_path: err-{tag}/{{blobname}}_error.json\n")
    return repo


# ------------------------------------------------------------------ Azurite stopped during a blob-test


def test_azurite_stopped_during_blob_test_is_a_clear_error(example, tmp_path) -> None:  # noqa: ANN001
    tag = uuid.uuid4().hex[:8]
    repo = blob_repo(example, tag)
    emulator = Azurite(location=tmp_path / "azurite").start()
    try:
        BlobServiceClient.from_connection_string(emulator.connection_string).create_container(f"in-{tag}")
        env = {**os.environ, "MODELFUNC_CONNECTION_STRING": emulator.connection_string}
        proc = subprocess.Popen([sys.executable, "-m", "modelfunc", "blob-test", str(repo), "--timeout", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                                text=True)
        first = proc.stderr.readline()  # "uploaded in-…/modelfunc-test-….json; waiting up to 120 s for …"
        assert first.startswith("uploaded "), first
        emulator.stop()  # no app answered yet: the blob-test is polling for the output
        stopped = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        emulator.stop()
    err = first + err
    assert proc.returncode == 1, out + err
    assert time.monotonic() - stopped < 30  # bounded retries, not the 120 s timeout
    assert f"error: storage account devstoreaccount1 at http://127.0.0.1:{emulator.port}/devstoreaccount1/ " \
           "failed: ServiceRequestError" in err, err
    assert "Connection refused" in err
    assert "hint: is the storage emulator (or account) running and the connection string right?" in err
    assert "Traceback" not in err and "PASS" not in out


# ------------------------------------------------------------------ the registry stopped during a push


def test_registry_stopped_during_push_is_a_clear_error_and_nothing_is_deployed(example, tmp_path,
                                                                             docker_engine) -> None:  # noqa: ANN001
    registry = Registry(tmp_path / "registry").start()
    try:
        repo = example("diabetes-servicebus")
        (repo / "model" / "weights.bin").write_bytes(os.urandom(96 * 2**20))  # an upload that takes a while
        image = f"{registry.host}/faults/model"
        cmd = [sys.executable, "-m", "modelfunc", "package", str(repo), "--out", str(tmp_path / "out"),
               "--base-image", BASE_IMAGE, "--no-pull", "--image", image, "--tag", "v1",
               "--json", str(tmp_path / "out.json")]
        with open(tmp_path / "package.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
        uploads = registry.workdir / "data" / "docker" / "registry" / "v2" / "repositories" / "faults" / "model" \
            / "_uploads"
        deadline = time.monotonic() + 600
        while not (uploads.is_dir() and any(uploads.iterdir())):  # the engine has started uploading a layer
            assert proc.poll() is None, (tmp_path / "package.log").read_text()
            assert time.monotonic() < deadline, "the push never started"
            time.sleep(0.01)
        registry.stop()
        out, _ = proc.communicate(timeout=600)
        err = (tmp_path / "package.log").read_text()
        assert proc.returncode == 1, err
        assert "==> push" in err
        assert f"error: pushing to registry {registry.host} failed" in err, err
        # The engine's retries of the upload are shown, not waited through in silence (about 50 s with dockerd's
        # default of 5 attempts).
        assert re.search(r"\n  \w+: the upload failed; the engine retries in \d+ s\n", err), err
        assert "Traceback" not in err
        assert "@sha256:" not in out  # no reference to deploy was printed
        assert not (tmp_path / "out.json").exists()  # ...nor written
        registry.start()  # the same storage, back up: no tag, no manifest — nothing half-deployed
        assert registry.tags("faults/model") == []
        assert registry.manifest_digest("faults/model", "v1") is None
    finally:
        registry.stop()
        registry.forget_images()


# ------------------------------------------------------------------ the host restarted mid-stream


@pytest.mark.parametrize("how", ["graceful", "killed"])
def test_host_restarted_mid_stream_loses_no_blob(example, azurite, tmp_path, monkeypatch, how: str) -> None:  # noqa: ANN001
    """SIGINT lets the blobs being scored finish: none is lost and none scored twice. SIGKILL (a crash) loses
    none either, but a blob cut off mid-run() has no receipt and is scored again: at least once, as on Azure."""
    tag = uuid.uuid4().hex[:8]
    repo = blob_repo(example, tag)
    (repo / "score.py").write_text(STREAM_SCORE)
    scored_log = tmp_path / "scored.log"
    monkeypatch.setenv("SCORED_LOG", str(scored_log))
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    hosts = Hosts(tmp_path)
    names = [f"b{i:03d}" for i in range(60)]
    bad = {"b010", "b045"}
    uploaded: list[str] = []
    done = threading.Event()

    def upload() -> None:
        for name in names:
            if done.is_set():
                return
            body = {"id": name, "boom": name in bad}
            storage.get_blob_client(f"in-{tag}", f"{name}.json").upload_blob(json.dumps(body).encode())
            uploaded.append(name)
            time.sleep(0.05)

    try:
        first = hosts.start(repo, connection_string=azurite.connection_string)
        uploader = threading.Thread(target=upload)
        uploader.start()
        while len(uploaded) < 20 or not scored_log.exists():
            time.sleep(0.02)
        if how == "graceful":
            assert first.stop() == 0
        else:
            first.process.send_signal(signal.SIGKILL)
            first.process.wait()
        hosts.start(repo, connection_string=azurite.connection_string)  # while the uploads go on
        uploader.join()
        deadline = time.monotonic() + 60
        outputs: set[str] = set()
        while True:
            outputs = {b.name.removesuffix("_out.json")
                       for b in storage.get_container_client(f"out-{tag}").list_blobs()}
            errors = {b.name.removesuffix("_error.json")
                      for b in storage.get_container_client(f"err-{tag}").list_blobs()}
            if outputs | errors >= set(names) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        done.set()
        hosts.stop_all()
    assert sorted(set(names) - bad - outputs) == [], "blobs lost"
    assert errors == bad  # the blobs that make run() raise got their error records
    for name in bad:
        record = json.loads(storage.get_blob_client(f"err-{tag}", f"{name}_error.json").download_blob().readall())
        assert record["status"] == 500 and "ValueError" in record["response"]["message"]
    counts = Counter(scored_log.read_text().split())
    assert set(counts) == set(names) - bad
    twice = {n: c for n, c in counts.items() if c > 1}
    if how == "graceful":
        assert twice == {}, f"scored more than once: {twice}"
    else:
        assert len(twice) <= 4 and all(c == 2 for c in twice.values()), twice  # only what 4 workers had in hand
    receipts = [b.name for b in storage.get_container_client("azure-webjobs-hosts").list_blobs(
        name_starts_with="blobreceipts/") if f"/in-{tag}/" in b.name]
    assert len(receipts) == len(names)  # one receipt per blob (error records included)
    try:
        storage.get_blob_client(f"out-{tag}", "b010_out.json").get_blob_properties()
        raise AssertionError("a blob whose run() raised has an output")
    except ResourceNotFoundError:
        pass
