"""Several worker processes behind one port (FUNCTIONS_WORKER_PROCESS_COUNT, as on the Functions host; issue 17).

Each worker loads the app and runs init() once, in its own process; connections are spread over them; the admin API
(status, the function list, the master key) answers the same whichever worker takes the connection; a blob is
scored by one process only; a worker that dies is reported and restarted; stopping the host stops every worker.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from support.blobs import own_containers, wait_for_blob

SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
SAMPLE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
EXPECTED = [661.6371, 362.4341]

# The example's score.py, which also notes each init() and each run() in a folder of markers (one file per pid).
MARKED = '''\
import json
import os

import numpy as np

model = None
MARKS = os.environ["MARKS_DIR"]


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")) as f:
        model = json.load(f)
    with open(os.path.join(MARKS, f"init-{os.getpid()}"), "a") as f:
        f.write("init\\n")


def run(data):
    with open(os.path.join(MARKS, f"run-{os.getpid()}"), "a") as f:
        f.write(data.replace("\\n", " ") + "\\n")
    rows = np.asarray(json.loads(data)["data"], dtype=float)
    return (rows @ np.asarray(model["coef"]) + model["intercept"]).round(4).tolist()
'''


def marked_repo(example, tmp_path: Path, name: str = "diabetes-http") -> tuple[Path, Path]:  # noqa: ANN001
    repo = example(name)
    (repo / "score.py").write_text(MARKED)
    marks = tmp_path / f"marks-{repo.name}"
    marks.mkdir()
    return repo, marks


def marks(folder: Path, kind: str) -> dict[int, list[str]]:
    return {int(p.name.split("-")[1]): p.read_text().splitlines() for p in folder.glob(f"{kind}-*")}


def new_connection(method: str, url: str, **kw) -> httpx.Response:  # noqa: ANN003
    with httpx.Client(timeout=30) as client:  # a connection of its own: the kernel may give it to any worker
        return client.request(method, url, **kw)


def serve_workers(serve, repo: Path, marks_dir: Path, n: int = 2, extra: tuple[str, ...] = (), **kw):  # noqa: ANN001, ANN201
    os.environ["MARKS_DIR"] = str(marks_dir)  # the host's environment reaches the app's process
    try:
        return serve(repo, extra=("--setting", f"{SETTING}={n}", *extra), **kw)
    finally:
        del os.environ["MARKS_DIR"]


def test_workers_share_the_port_and_init_once_each(example, serve, tmp_path) -> None:  # noqa: ANN001
    repo, folder = marked_repo(example, tmp_path)
    (repo / "modelfunc.yaml").write_text("trigger:\n  type: http\n  auth_level: anonymous\n  route: score\n")
    host = serve_workers(serve, repo, folder)
    assert "2 worker processes" in host.output()
    inits = marks(folder, "init")
    assert len(inits) == 2 and all(v == ["init"] for v in inits.values()), inits  # once per process
    answers = []
    deadline = time.monotonic() + 60
    while len(marks(folder, "run")) < 2 and time.monotonic() < deadline:
        resp = new_connection("POST", f"{host.url}/api/score", json=SAMPLE)
        answers.append((resp.status_code, resp.content))
    runs = marks(folder, "run")
    assert set(runs) == set(inits), "both workers answer on the one port"
    assert set(answers) == {(200, json.dumps(EXPECTED).encode())}  # the same answer, whoever gave it
    # The admin API: the same from every worker (the primary's), the invocations of both counted.
    statuses = [new_connection("GET", f"{host.url}/admin/host/status").json() for _ in range(12)]
    for s in statuses:
        s.pop("uptime_s")
    assert all(s == statuses[0] for s in statuses), statuses
    assert statuses[0]["state"] == "Running"
    assert statuses[0]["workers"] == {"count": 2, "restarts": 0}
    assert statuses[0]["http_invocations"] == len(answers) == sum(len(v) for v in runs.values())
    listed = {new_connection("GET", f"{host.url}/admin/functions").content for _ in range(8)}
    assert len(listed) == 1


def test_master_key_is_required_by_every_worker(example, serve, tmp_path) -> None:  # noqa: ANN001
    repo, folder = marked_repo(example, tmp_path)
    host = serve_workers(serve, repo, folder, extra=("--setting", "MODELFUNC_MASTER_KEY=k3y-for-all"))
    refused = {new_connection("GET", f"{host.url}/admin/host/status").status_code for _ in range(12)}
    allowed = {new_connection("GET", f"{host.url}/admin/host/status",
                              headers={"x-functions-key": "k3y-for-all"}).status_code for _ in range(12)}
    assert (refused, allowed) == ({401}, {200})


def test_a_dead_worker_is_reported_and_restarted_and_stop_ends_all(example, serve, tmp_path) -> None:  # noqa: ANN001
    repo, folder = marked_repo(example, tmp_path)
    host = serve_workers(serve, repo, folder)
    first = set(marks(folder, "init"))
    victim = sorted(first)[-1]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(marks(folder, "init")) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    inits = set(marks(folder, "init"))
    assert len(inits) == 3, host.output()  # a new process, which ran init() once
    assert f"(pid {victim}) exited with code -9; restarted as pid" in host.output(), host.output()
    while time.monotonic() < deadline:
        status = new_connection("GET", f"{host.url}/admin/host/status")
        if status.status_code == 200 and status.json()["workers"]["restarts"] == 1:
            break
        time.sleep(0.2)
    assert status.json()["workers"] == {"count": 2, "restarts": 1}
    for _ in range(10):
        resp = new_connection("POST", f"{host.url}/api/score", json=SAMPLE, headers={"x-functions-key": "x"})
        assert resp.status_code in (200, 401)  # the example's function level: answered, by either worker
    assert host.stop() == 0
    alive = []
    for pid in inits - {victim}:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    assert alive == [], f"workers left running: {alive}"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{host.url}/admin/host/status", timeout=5)


def test_blobs_are_scored_once_with_several_workers(example, serve, azurite, tmp_path) -> None:  # noqa: ANN001
    from azure.storage.blob import BlobServiceClient

    repo, folder = marked_repo(example, tmp_path, "diabetes-blob")
    tag = own_containers(repo)
    host = serve_workers(serve, repo, folder, connection_string=azurite.connection_string)
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    names = [f"patient-{i}" for i in range(8)]
    for name in names:
        storage.get_blob_client(f"in-{tag}", f"{name}.json").upload_blob(json.dumps(SAMPLE).encode())
    for name in names:
        assert json.loads(wait_for_blob(storage, f"out-{tag}", f"{name}_out.json", 60, host)) == EXPECTED
    time.sleep(1.0)  # time for a second listener, were there one, to score them again
    runs = marks(folder, "run")
    assert len(runs) == 1, f"blobs scored in more than one process: {sorted(runs)}"
    assert len(next(iter(runs.values()))) == len(names)  # each blob once
    assert len(marks(folder, "init")) == 2
    assert host.status()["blob_listeners"]["score_blob"]["scored"] == len(names)


def test_a_bad_worker_count_is_a_clear_error(example, serve, tmp_path) -> None:  # noqa: ANN001
    repo, folder = marked_repo(example, tmp_path)
    host = serve_workers(serve, repo, folder, n=0, expect_ready=False)
    assert host.process.wait(timeout=60) != 0
    assert f"app setting {SETTING}='0' is not a number of worker processes from 1 to 10" in host.output()
    assert not marks(folder, "init")
