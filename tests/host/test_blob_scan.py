"""The blob trigger's incremental scan (localhost/blobscan.py, receipts.py) on the real Azurite: new blobs noticed,
an overwritten blob scored again, nothing scored twice and nothing lost across a restart (with scan info and
without), backoff while idle that snaps back, failing blobs tried again after the watermark moved on, and memory
bounded by recent blobs rather than by the container's history. Beside the scan, Azurite's access log
(localhost/accesslog.py): the writes it names, as the real Azurite wrote them, and a blob written while the scans
are idle scored at once, once.

The listener runs in this process with a plain Python function as the user's code; storage is Azurite's."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from azure.storage.blob import BlobClient, BlobServiceClient
from modelfunc.localhost import blobscan
from modelfunc.localhost.accesslog import AccessLog
from modelfunc.localhost.blobs import BlobListener, Out
from modelfunc.localhost.blobscan import parse_listing
from modelfunc.localhost.loader import Binding, LoadedFunction
from modelfunc.localhost.receipts import RECEIPTS_CONTAINER


class Calls:
    """The user's function: copies the blob to the output and records each call as (name, etag)."""

    def __init__(self, fail: Callable[[str, int], bool] | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.fail = fail

    def __call__(self, blob, out: Out) -> None:  # noqa: ANN001 - azure.functions.InputStream
        name = blob.name.split("/", 1)[1]
        with self.lock:
            self.seen.append((name, blob.blob_properties["ETag"]))
            tries = sum(1 for n, _ in self.seen if n == name)
        if self.fail and self.fail(name, tries):
            raise RuntimeError(f"failing {name} (try {tries})")
        out.set(blob.read())


@pytest.fixture
def make(azurite) -> Iterator[Callable[..., tuple[BlobListener, Calls]]]:  # noqa: ANN001
    """``make(container, calls)`` -> a started listener (stopped after the test); same host id each time."""
    made: list[BlobListener] = []

    def build(container: str, calls: Calls, *, poll_interval: float = 0.05, start: bool = True,
              poison_threshold: int = 5, storage_log: bool = False) -> tuple[BlobListener, Calls]:
        conn = azurite.connection_string
        function = LoadedFunction(
            name="scan_test",
            trigger=Binding("blob", "blobTrigger", "in", {"path": f"{container}/{{name}}",
                                                          "connection": "AzureWebJobsStorage"}),
            outputs=(Binding("out", "blob", "out", {"path": f"{container}-out/{{name}}",
                                                    "connection": "AzureWebJobsStorage"}),),
            user_function=calls)
        listener = BlobListener(function, {"AzureWebJobsStorage": conn}, host_id=f"scantest-{container}",
                                poll_interval=poll_interval, poison_threshold=poison_threshold,
                                storage_log=azurite.access_log if storage_log else None)
        made.append(listener)
        if start:
            listener.start()
        return listener, calls

    yield build
    for listener in made:
        listener.stop()


@pytest.fixture
def storage(azurite) -> BlobServiceClient:  # noqa: ANN001
    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def container(storage: BlobServiceClient) -> str:
    name = f"scan-{uuid.uuid4().hex[:12]}"
    storage.create_container(name)
    return name


def upload(storage: BlobServiceClient, container: str, names: list[str], body: bytes = b"x") -> dict[str, str]:
    return {n: storage.get_blob_client(container, n).upload_blob(body, overwrite=True)["etag"].strip('"')
            for n in names}


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def outputs(storage: BlobServiceClient, container: str) -> set[str]:
    return {b.name for b in storage.get_container_client(f"{container}-out").list_blobs()}


def test_the_listing_parser_reads_escaped_and_encoded_names() -> None:
    body = (b'<?xml version="1.0"?><EnumerationResults><Blobs>'
            b'<Blob><Name>a&amp;b &lt;c&gt;.json</Name><Properties><Last-Modified>Mon, 30 Nov 2026 19:02:00 GMT'
            b'</Last-Modified><Etag>"0x1"</Etag></Properties></Blob>'
            b'<Blob><Name Encoded="true">odd%EF%BF%BE.json</Name><Properties><Last-Modified>Mon, 30 Nov 2026 '
            b'19:02:01 GMT</Last-Modified><Etag>0x2</Etag></Properties></Blob>'
            b'</Blobs><NextMarker>m&amp;1</NextMarker></EnumerationResults>')
    items, marker = parse_listing(body)
    assert [(i.name, i.etag) for i in items] == [("a&b <c>.json", "0x1"), ("odd\ufffe.json", "0x2")]
    assert items[1].modified - items[0].modified == 1.0
    assert marker == "m&1"
    assert parse_listing(body.replace(b"<NextMarker>m&amp;1</NextMarker>", b"<NextMarker/>"))[1] is None


def test_new_blobs_are_noticed_across_pages_each_scored_once(make, storage, container, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(blobscan, "PAGE_SIZE", 7)  # several pages, continued from the marker
    names = [f"b-{i:03d}.json" for i in range(40)] + ["a&b ü.json", "dir/x.json"]
    upload(storage, container, names)
    listener, calls = make(container, Calls())
    wait_for(lambda: listener.stats.scored == len(names), what="the first blobs")
    later = [f"later-{i}.json" for i in range(5)]
    upload(storage, container, later)
    wait_for(lambda: listener.stats.scored == len(names) + len(later), what="blobs uploaded while listening")
    time.sleep(0.5)  # further sweeps find nothing more
    assert Counter(n for n, _ in calls.seen) == Counter(names + later)
    assert outputs(storage, container) == set(names + later)
    assert listener.stats.failed == 0 and listener.scan.sweeps >= 2


def test_an_overwritten_blob_is_scored_again_an_unchanged_one_never(make, storage, container) -> None:  # noqa: ANN001
    first = upload(storage, container, ["same.json", "changed.json"])
    listener, calls = make(container, Calls())
    wait_for(lambda: listener.stats.scored == 2, what="two blobs")
    time.sleep(0.3)
    second = upload(storage, container, ["changed.json"], b"y")  # within the same second: the ETag tells
    wait_for(lambda: listener.stats.scored == 3, what="the overwritten blob")
    time.sleep(blobscan.OVERLAP + 1)  # sweeps past the overlap: nothing more
    assert sorted(calls.seen) == sorted([("same.json", first["same.json"]), ("changed.json", first["changed.json"]),
                                         ("changed.json", second["changed.json"])])
    assert storage.get_blob_client(f"{container}-out", "changed.json").download_blob().readall() == b"y"


@pytest.mark.parametrize("scan_info", ["kept", "lost"])
def test_a_restart_scores_nothing_twice_and_loses_nothing(scan_info: str, make, storage, container) -> None:  # noqa: ANN001
    names = [f"r-{i:02d}.json" for i in range(30)]
    upload(storage, container, names)
    listener, calls = make(container, Calls())
    wait_for(lambda: listener.stats.scored == 30, what="the first 30")
    wait_for(lambda: listener.scan.sweeps >= 2, what="a sweep after them")
    listener.stop()
    info = f"blobscaninfo/scantest-{container}/scan_test/{container}/scanInfo"
    hosts = storage.get_container_client(RECEIPTS_CONTAINER)
    assert hosts.get_blob_client(info).exists()
    if scan_info == "lost":  # e.g. receipts written by a host that kept none: the receipts alone decide
        hosts.delete_blob(info)
    # While it was down: new blobs, and one old blob overwritten.
    new = upload(storage, container, [f"n-{i}.json" for i in range(4)] + ["r-07.json"], b"v2")
    again, calls2 = make(container, Calls())
    wait_for(lambda: again.stats.scored == 5, what="the blobs written while the host was down")
    time.sleep(blobscan.OVERLAP + 1)
    assert sorted(calls2.seen) == sorted(new.items())
    assert again.stats.scored == 5
    assert outputs(storage, container) == set(names) | set(new)


def test_idle_polls_back_off_and_snap_back_when_a_blob_arrives(make, storage, container) -> None:  # noqa: ANN001
    listener, calls = make(container, Calls(), poll_interval=0.02)
    time.sleep(1.0)
    sweeps = listener.scan.sweeps
    time.sleep(3.0)
    idle_sweeps = listener.scan.sweeps - sweeps
    # Without backoff: 3 s / 0.02 s = 150 sweeps; with it at most one per MAX_INTERVAL.
    assert idle_sweeps <= 3.0 / blobscan.MAX_INTERVAL + 2, idle_sweeps
    assert listener.scan.interval == blobscan.MAX_INTERVAL
    t0 = time.monotonic()
    upload(storage, container, ["wake.json"])
    wait_for(lambda: listener.stats.scored == 1, what="the blob after idling")
    assert time.monotonic() - t0 < blobscan.MAX_INTERVAL + 1.5
    assert listener.scan.interval <= 2 * listener.poll_interval  # fast again (it may have doubled once since)


def test_a_failing_blob_is_tried_again_after_the_watermark_moved_on(make, storage, container) -> None:  # noqa: ANN001
    calls = Calls(fail=lambda name, tries: name == "flaky.json" and tries <= 2)
    upload(storage, container, ["flaky.json", "fine.json"])
    listener, _ = make(container, calls)
    wait_for(lambda: listener.stats.scored == 2, what="the flaky blob on its third try")
    assert listener.stats.failed == 2 and listener.stats.retried == 2 and listener.stats.poisoned == 0
    assert Counter(n for n, _ in calls.seen) == {"flaky.json": 3, "fine.json": 1}


def test_a_blob_still_failing_holds_the_watermark_so_a_restart_finds_it(make, storage, container) -> None:  # noqa: ANN001
    upload(storage, container, ["flaky.json"])
    listener, failing = make(container, Calls(fail=lambda name, tries: name == "flaky.json"),
                            poison_threshold=10_000)
    wait_for(lambda: listener.stats.failed >= 1, what="a first failure")
    time.sleep(blobscan.OVERLAP + 2)  # sweeps go on meanwhile: without the hold the watermark would pass it
    assert listener.scan.sweeps >= 3 and listener.stats.scored == 0
    upload(storage, container, ["other.json"])  # a later blob, scored: the sweep moves on
    wait_for(lambda: listener.stats.scored == 1, what="the later blob")
    listener.stop()
    again, fine = make(container, Calls(), poison_threshold=10_000)
    wait_for(lambda: again.stats.scored == 1, what="the failing blob after the restart")
    assert [n for n, _ in fine.seen] == ["flaky.json"]


def test_memory_holds_recent_blobs_not_the_history(make, storage, container) -> None:  # noqa: ANN001
    names = [f"m-{i:03d}.json" for i in range(200)]
    upload(storage, container, names)
    listener, _ = make(container, Calls())
    wait_for(lambda: listener.stats.scored == 200, what="200 blobs")
    # Once a sweep began more than OVERLAP after their Last-Modified, they are vouched for by the watermark.
    wait_for(lambda: listener.stats.scan.get("keys_in_memory") == 0, timeout=blobscan.OVERLAP + 15,
             what="the receipts in memory to be let go")
    assert listener.stats.scan["listed"] >= 400  # the blobs are still listed: they cost no memory, no request
    upload(storage, container, ["one-more.json"])
    wait_for(lambda: listener.stats.scored == 201, what="a new blob")
    time.sleep(0.5)
    assert listener.stats.scored == 201


# ------------------------------------------------------------------ the storage log (Azurite's access log)


def test_the_access_log_names_each_blob_a_request_wrote_once_as_azurite_logged_it(azurite, storage,  # noqa: ANN001
                                                                                   container) -> None:
    """The real Azurite's log of real SDK requests: Put Blob (an odd name, percent-encoded on the wire), a blob
    uploaded in blocks (only its Put Block List counts), Set Blob Metadata, an append blob; not a block staged and
    never committed, a lease, a read, a listing, a delete; another container's write under its own name."""
    log = AccessLog(azurite.access_log)
    assert log.writes() == []  # what the session's Azurite logged before is not news
    other = f"{container}-other"
    storage.create_container(other)
    odd = "a b&c+d ü/x.json"
    client = storage.get_container_client(container)
    client.upload_blob(odd, b"{}")
    BlobClient.from_connection_string(azurite.connection_string, container, "blocks.bin", max_single_put_size=1024,
                                      max_block_size=1024).upload_blob(b"x" * 3000)  # 3 blocks, then the list
    client.get_blob_client(odd).set_blob_metadata({"k": "v"})
    appended = client.get_blob_client("app.log")
    appended.create_append_blob()
    appended.append_block(b"line\n")
    client.get_blob_client("staged.bin").stage_block("YmxvY2s=", b"never committed")
    client.get_blob_client("blocks.bin").acquire_lease(15)
    client.download_blob(odd).readall()
    list(client.list_blobs())
    client.upload_blob("gone.json", b"{}")
    client.delete_blob("gone.json")
    storage.get_blob_client(other, "there.json").upload_blob(b"{}")
    seen: dict[tuple[str, str], None] = {}
    wait_for(lambda: bool(seen.update(dict.fromkeys(log.writes()))) or (other, "there.json") in seen,
             timeout=10, what="the last write in the log")
    assert list(seen) == [(container, odd), (container, "blocks.bin"), (container, "app.log"),
                          (container, "gone.json"), (other, "there.json")]
    assert log.writes() == []


def test_a_blob_written_while_the_scans_idle_is_scored_at_once_from_the_log(make, storage,  # noqa: ANN001
                                                                            container) -> None:
    """Scans 30 s apart: only the log can find a blob within seconds. Scored once each (a later sweep finds the same
    ETag), an overwrite again, a name the trigger does not match never."""
    listener, calls = make(container, Calls(), poll_interval=30.0, storage_log=True)
    wait_for(lambda: listener.scan.sweeps == 1, what="the first sweep")
    t0 = time.monotonic()
    etags = upload(storage, container, ["now.json"])
    wait_for(lambda: listener.stats.scored == 1, timeout=5, what="the blob, through the log")
    took = time.monotonic() - t0
    assert took < 2.0 and listener.scan.sweeps == 1, (took, listener.scan.sweeps)
    assert listener.scan.hinted == 1 and listener.stats.as_dict()["scan"]["hinted"] == 1
    again = upload(storage, container, ["now.json"], body=b"y")  # an overwrite: a new ETag
    wait_for(lambda: listener.stats.scored == 2, timeout=5, what="the overwrite, through the log")
    storage.get_blob_client(f"{container}-out", "elsewhere.json").upload_blob(b"z")  # not the trigger's container
    time.sleep(0.3)
    listener.poll_once()  # a sweep now finds both versions done
    listener.poll_once()
    assert calls.seen == [("now.json", etags["now.json"]), ("now.json", again["now.json"])]
    assert listener.stats.scored == 2 and listener.scan.hinted == 2
