"""Blob trigger end to end on the real Azurite emulator: the local host, blob receipts, error records,
and `modelfunc blob-test`."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import time
from pathlib import Path

import pytest
import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient
from support.blobs import own_containers, wait_for_blob
from support.core import run_modelfunc

EXPECTED = [661.6371, 362.4341]
SAMPLE = b'{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}'


@pytest.fixture
def storage(azurite) -> BlobServiceClient:  # noqa: ANN001
    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def blob_repo(example) -> Path:  # noqa: ANN001
    """A blob repo with containers unique to the test, so tests never see each other's blobs."""
    repo = example("diabetes-blob")
    own_containers(repo)
    return repo


def containers(repo: Path) -> tuple[str, str, str]:
    text = (repo / "modelfunc.yaml").read_text()
    names = [line.split(":", 1)[1].strip().split("/")[0] for line in text.splitlines() if "_path" in line]
    return names[0], names[1], names[2]


def wait_for(storage: BlobServiceClient, container: str, name: str, timeout: float = 20) -> bytes:
    return wait_for_blob(storage, container, name, timeout)


def exists(storage: BlobServiceClient, container: str, name: str) -> bool:
    return storage.get_blob_client(container, name).exists()


def test_upload_produces_output_and_restart_does_not_rescore(blob_repo, serve, azurite, storage) -> None:
    src, dst, _ = containers(blob_repo)
    host = serve(blob_repo, connection_string=azurite.connection_string)
    storage.get_blob_client(src, "patient-1.json").upload_blob(SAMPLE)
    assert json.loads(wait_for(storage, dst, "patient-1_out.json")) == EXPECTED
    assert host.status()["blob_listeners"]["score_blob"]["scored"] == 1
    # A receipt now exists, exactly where the Functions host keeps them.
    receipts = [b.name for b in storage.get_container_client("azure-webjobs-hosts").list_blobs(
        name_starts_with="blobreceipts/")]
    assert any(r.endswith(f"/score_blob/{r.split('/')[3]}/{src}/patient-1.json") for r in receipts), receipts

    assert host.stop() == 0
    storage.get_blob_client(dst, "patient-1_out.json").delete_blob()
    host = serve(blob_repo, connection_string=azurite.connection_string)
    # A new blob after the restart proves the listener runs; the old one must not be scored again.
    storage.get_blob_client(src, "patient-2.json").upload_blob(SAMPLE)
    wait_for(storage, dst, "patient-2_out.json")
    time.sleep(1.0)  # ten more scans of the container
    assert not exists(storage, dst, "patient-1_out.json")
    assert host.status()["blob_listeners"]["score_blob"]["scored"] == 1


def test_overwritten_blob_is_scored_again(blob_repo, serve, azurite, storage) -> None:
    src, dst, _ = containers(blob_repo)
    serve(blob_repo, connection_string=azurite.connection_string)
    blob = storage.get_blob_client(src, "p.json")
    blob.upload_blob(SAMPLE)
    wait_for(storage, dst, "p_out.json")
    storage.get_blob_client(dst, "p_out.json").delete_blob()
    blob.upload_blob(b'{"data": [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]}', overwrite=True)  # new ETag
    assert json.loads(wait_for(storage, dst, "p_out.json")) == [151.7864]


def test_blob_that_makes_run_raise_leaves_an_error_record(blob_repo, serve, azurite, storage) -> None:
    src, dst, err = containers(blob_repo)
    host = serve(blob_repo, connection_string=azurite.connection_string)
    storage.get_blob_client(src, "bad.json").upload_blob(b'{"data": [[1, 2, 3]]}')
    record = json.loads(wait_for(storage, err, "bad_error.json"))
    assert record["blob"] == f"{src}/bad.json"
    assert record["status"] == 500
    assert record["error_id"] and record["error_id"] in host.output()
    assert "ValueError" in record["response"]["message"]
    time.sleep(0.5)
    assert not exists(storage, dst, "bad_out.json")
    stats = host.status()["blob_listeners"]["score_blob"]
    assert stats["failed"] == 0 and stats["retried"] == 0  # recorded once, not retried for ever


def test_blob_test_command_passes(blob_repo, serve, azurite, tmp_path) -> None:
    serve(blob_repo, connection_string=azurite.connection_string)
    report = tmp_path / "report.json"
    result = run_modelfunc("blob-test", str(blob_repo), "--timeout", "30", "--report", str(report),
                           env={"MODELFUNC_CONNECTION_STRING": azurite.connection_string})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS: blob round trip")
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["actual"] == EXPECTED and data["mismatches"] == []
    assert 0 < data["latency_ms"] < 30_000
    assert azurite.connection_string not in result.stdout + result.stderr  # the key never reaches the output


def test_blob_test_fails_clearly_when_expected_is_wrong(blob_repo, serve, azurite, tmp_path) -> None:
    (blob_repo / "samples" / "expected.json").write_text("[661.6371, 999.0]\n")
    serve(blob_repo, connection_string=azurite.connection_string)
    report = tmp_path / "report.json"
    result = run_modelfunc("blob-test", str(blob_repo), "--timeout", "30", "--report", str(report),
                           env={"MODELFUNC_CONNECTION_STRING": azurite.connection_string})
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL: blob round trip")
    assert "[1]: 999.0 vs 362.4341" in result.stdout
    assert "error: the sample did not round-trip" in result.stderr
    data = json.loads(report.read_text())
    assert data["passed"] is False
    assert data["mismatches"] == [{"path": "[1]", "expected": 999.0, "actual": 362.4341,
                                   "reason": "differs by 636.566 > 0.0001"}]


def test_blob_test_reports_the_error_record(blob_repo, serve, azurite) -> None:
    (blob_repo / "samples" / "input.json").write_text('{"data": [[1, 2]]}\n')
    serve(blob_repo, connection_string=azurite.connection_string)
    result = run_modelfunc("blob-test", str(blob_repo), "--timeout", "30",
                           env={"MODELFUNC_CONNECTION_STRING": azurite.connection_string})
    assert result.returncode == 1
    assert "the app wrote an error record instead of an output" in result.stdout
    assert "ValueError" in result.stdout


def test_blob_test_times_out_when_no_app_listens(blob_repo, azurite, storage) -> None:
    src, _, _ = containers(blob_repo)
    storage.create_container(src)
    started = time.monotonic()
    result = run_modelfunc("blob-test", str(blob_repo), "--timeout", "2",
                           env={"MODELFUNC_CONNECTION_STRING": azurite.connection_string})
    assert result.returncode == 1
    assert f"no output after 2 s: is the app running and listening to container '{src}'" in result.stdout
    assert time.monotonic() - started < 30


def test_blob_test_without_storage_is_a_clear_error(blob_repo) -> None:
    dead = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    result = run_modelfunc("blob-test", str(blob_repo), "--timeout", "5", env={"MODELFUNC_CONNECTION_STRING": dead})
    assert result.returncode == 1
    assert "error: storage account devstoreaccount1 at http://127.0.0.1:9/devstoreaccount1" in result.stderr
    assert "a2V5" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_starts_embedded_azurite_and_stops_it(blob_repo, serve, stop_signal) -> None:
    host = serve(blob_repo, extra=("--azurite",))
    assert host.status()["state"] == "Running"
    port = int(re.search(r"Started Azurite on 127\.0\.0\.1:(\d+)", host.output()).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    host.process.send_signal(stop_signal)
    assert host.process.wait(timeout=30) == 0
    with pytest.raises(OSError):  # the emulator went with the host
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize("azurite_from", ["started-by-serve", "given-as-up-gives-it"])
def test_a_blob_is_scored_within_a_second_from_azurites_log_while_the_scans_idle(  # noqa: ANN001
        blob_repo, serve, azurite, monkeypatch, azurite_from: str) -> None:
    """Scans 30 s apart, so only the storage log can find the blob soon: the Azurite `serve` starts itself, and
    the one `modelfunc up` starts and names to the host (MODELFUNC_AZURITE_LOG beside the connection string)."""
    src, dst, _ = containers(blob_repo)
    slow = ("--poll-interval", "30")
    if azurite_from == "started-by-serve":
        host = serve(blob_repo, extra=("--azurite", *slow))
        conn = re.search(r"connection string for blob-test:\n\s+(\S+)", host.output()).group(1)
    else:
        monkeypatch.setenv("MODELFUNC_AZURITE_LOG", str(azurite.access_log))
        conn = azurite.connection_string
        host = serve(blob_repo, connection_string=conn, extra=slow)
    storage = BlobServiceClient.from_connection_string(conn)
    time.sleep(0.5)  # past the first sweep: the next is 30 s away
    t0 = time.monotonic()
    storage.get_blob_client(src, "soon.json").upload_blob(SAMPLE)
    assert json.loads(wait_for_blob(storage, dst, "soon_out.json", timeout=10, host=host)) == EXPECTED
    assert time.monotonic() - t0 < 1.5, host.output()
    listener = host.status()["blob_listeners"]["score_blob"]
    assert listener["scored"] == 1 and listener["scan"]["hinted"] == 1, listener


def test_rawhttp_entry_script_gets_the_blob_bytes_as_a_request(blob_repo, serve, azurite, storage) -> None:
    import shutil

    from support.core import FIXTURES

    shutil.copyfile(FIXTURES / "styles" / "rawhttp.py", blob_repo / "score.py")
    (blob_repo / "environment.yml").write_text(
        "dependencies:\n  - pip:\n      - numpy\n      - azureml-contrib-services\n")
    src, dst, _ = containers(blob_repo)
    serve(blob_repo, connection_string=azurite.connection_string)
    storage.get_blob_client(src, "raw.json").upload_blob(SAMPLE)  # no content type: judged by the .json name
    assert json.loads(wait_for(storage, dst, "raw_out.json")) == EXPECTED


def test_malformed_json_blob_gets_an_error_record_not_a_crash(blob_repo, serve, azurite, storage) -> None:
    src, dst, err = containers(blob_repo)
    serve(blob_repo, connection_string=azurite.connection_string)
    storage.get_blob_client(src, "truncated.json").upload_blob(b'{"data": [[1, 2')
    record = json.loads(wait_for(storage, err, "truncated_error.json"))
    assert record["status"] == 400
    assert "not valid JSON" in record["response"]["message"]
    assert not exists(storage, dst, "truncated_out.json")


class _RefuseWrites(requests.adapters.HTTPAdapter):
    """In front of the real Azurite: answer the first ``n`` uploads as Azure Storage does before a new data role
    applies (403 AuthorizationPermissionMismatch); everything else goes through to Azurite."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.refused = n, 0

    def send(self, request, **kwargs):  # noqa: ANN001, ANN201
        if request.method == "PUT" and "/in-" in request.url and self.refused < self.n:
            self.refused += 1
            resp = requests.Response()
            resp.status_code, resp.reason, resp.url, resp.request = 403, "Forbidden", request.url, request
            resp.headers["x-ms-error-code"] = "AuthorizationPermissionMismatch"
            resp.headers["Content-Type"] = "application/xml"
            resp._content = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch'
                             b"</Code><Message>This request is not authorized to perform this operation using this "
                             b"permission.</Message></Error>")
            resp.raw = io.BytesIO(resp._content)
            return resp
        return super().send(request, **kwargs)


def _refusing_transport(n: int) -> tuple[RequestsTransport, _RefuseWrites]:
    adapter = _RefuseWrites(n)
    session = requests.Session()
    session.mount("http://", adapter)
    return RequestsTransport(session=session, session_owner=False), adapter


def test_the_test_waits_while_a_new_data_role_applies(blob_repo, serve, azurite, monkeypatch) -> None:  # noqa: ANN001
    from modelfunc.config import load_project
    from modelfunc.roundtrip import report as reports
    from modelfunc.roundtrip.blob import run_blob_test

    monkeypatch.setattr(reports, "ROLE_RETRY_FIRST", 0.2)
    serve(blob_repo, connection_string=azurite.connection_string)
    transport, adapter = _refusing_transport(2)
    notes: list[str] = []
    report = run_blob_test(load_project(blob_repo), azurite.connection_string, timeout=30,
                           transport=transport, progress=notes.append)
    assert report.passed, report.render()
    assert adapter.refused == 2
    assert sum("AuthorizationPermissionMismatch" in n and "trying again" in n for n in notes) == 2


def test_a_role_that_never_applies_ends_with_the_role_to_grant(blob_repo, azurite, monkeypatch) -> None:  # noqa: ANN001
    from modelfunc.config import load_project
    from modelfunc.errors import StorageError
    from modelfunc.roundtrip import report as reports
    from modelfunc.roundtrip.blob import run_blob_test

    monkeypatch.setattr(reports, "ROLE_RETRY_FIRST", 0.2)
    transport, adapter = _refusing_transport(1000)
    started = time.monotonic()
    with pytest.raises(StorageError, match="refused the test's upload") as e:
        run_blob_test(load_project(blob_repo), azurite.connection_string, timeout=5, transport=transport,
                      role_wait=1.0)
    assert time.monotonic() - started < 5
    assert "Storage Blob Data Contributor" in (e.value.hint or "") and adapter.refused >= 2
