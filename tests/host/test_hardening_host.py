"""Issue 13, the local host's share: blobs, secrets, poison input and signals — each case on the real parts (Azurite,
`modelfunc serve` and `modelfunc up` as processes, the action's up step), each a row of docs/bad-inputs.md (``ROWS``).

* a SAS token is never printed, in any form (raw, re-ordered, URL-encoded, JSON-escaped): the redactor, the masks
  and the secrets guard (tests/support/secrets_guard.py) each know every form;
* no blob path leaves its container (``..``, ``%2e%2e``, ``\\``), whoever writes it: modelfunc.yaml, the app, the
  admin API, or the name of an uploaded blob; a property-based layer throws random names and patterns at the one
  normaliser (modelfunc/blobpath.py);
* a blob that fails — SystemExit or KeyboardInterrupt from run(), or a run() that ends the host process — is tried
  as often as the Functions host tries it and then moved to the poison queue
  (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#poison-blobs);
* blob receipts survive their container being deleted, and belong to one app and one slot (the host id);
* a signal to `modelfunc up` leaves no process behind; an admin invoke of a missing blob is a 404 naming it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest
from azure.storage.blob import AccountSasPermissions, BlobServiceClient, ResourceTypes, generate_account_sas
from modelfunc.azurite import DEV_ACCOUNT, DEV_KEY, Azurite
from support.blobs import own_containers, wait_for_blob
from support.cases.hardening_host import (
    ADMIN,
    DOT_DOT,
    RECEIPTS,
    ROWS,
    RUN_ENDS,
    RUN_KILLS,
    SAS_FORMS,
    SAS_PRINTED,
    SIGNALS,
)
from support.core import ROOT, Hosts, run_modelfunc
from support.secrets_guard import readings

EXPECTED = [661.6371, 362.4341]
SAMPLE = b'{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}'
POISON_QUEUE = "webjobs-blobtrigger-poison"


# ------------------------------------------------------------------ helpers


def tagged_repo(example, tag: str, *, out: str = "out") -> Path:  # noqa: ANN001
    """The blob example with containers of its own (``in-<tag>``, ``<out>-<tag>``, ``err-<tag>``)."""
    repo = example("diabetes-blob")
    own_containers(repo, tag, out=out)
    return repo


def wait_until(condition, timeout: float = 30, what: str = "the condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def sas_connection(port: int, hours: float = 2) -> tuple[str, str]:
    """(a connection string with an account SAS for Azurite's blob service, the SAS's signature decoded)."""
    sas = generate_account_sas(DEV_ACCOUNT, DEV_KEY, ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True,
                                                     create=True, update=True),
                               expiry=datetime.now(timezone.utc) + timedelta(hours=hours))
    sig = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    return f"BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};SharedAccessSignature={sas}", unquote(sig)


def shows(text: str, secret: str) -> bool:
    """Whether ``secret`` can be read in ``text`` in any form (raw, URL-encoded, JSON-escaped, ...)."""
    return any(secret in view for view in readings(text))


def hidden(text: str, secret: str) -> str:
    """``text`` fit for a failure message: where it shows ``secret``, its decoded reading with the secret starred
    (a failing test must not print what it guards)."""
    for view in readings(text):
        if secret in view:
            return view.replace(secret, "***")
    return text


def poison_messages(connection_string: str, container: str) -> list[dict]:
    from modelfunc.storage import StorageQueue

    queue = StorageQueue.for_connection(connection_string, POISON_QUEUE)
    assert queue is not None, "the emulator has no queue service"
    messages = [json.loads(m) for m in queue.peek(32)]
    return [m for m in messages if m.get("ContainerName") == container]


def package_app(repo: Path) -> Path:
    result = run_modelfunc("package", str(repo), "--no-build")
    assert result.returncode == 0, result.stderr
    return repo / "build" / "app"


def without_poison_threshold(app: Path) -> int:
    """Drop host.json's poisonBlobThreshold, so the Functions host's default (5) applies; returns it."""
    host = json.loads((app / "host.json").read_text())
    host["extensions"]["blobs"].pop("poisonBlobThreshold", None)
    (app / "host.json").write_text(json.dumps(host, indent=2))
    return 5


def threshold_of(app: Path) -> int:
    return json.loads((app / "host.json").read_text())["extensions"]["blobs"].get("poisonBlobThreshold", 5)


# ================================================================== (1) the SAS token is never printed

_SIG = "K3y+Secret/Signature0123456789abcdefghijkl="  # a SAS signature of a test's own (no real account)
_SAS = f"sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&sig={quote(_SIG, safe='')}"


@pytest.mark.parametrize("form", [c[0] for c in SAS_FORMS])
def test_the_redactor_removes_the_sas_in_every_printed_form(form: str) -> None:
    from modelfunc.redact import Redactor, redact

    shape = next(how for cid, _, how in SAS_FORMS if cid == form)
    printed = eval(shape)(_SAS, _SIG)  # noqa: S307 - the case's own lambda
    assert shows(printed, _SIG)
    # By value: a redactor that was given the connection string removes the signature in every form.
    known = Redactor([f"BlobEndpoint=http://127.0.0.1:1/{DEV_ACCOUNT};SharedAccessSignature={_SAS}"])
    assert not shows(known(printed), _SIG), hidden(known(printed), _SIG)
    # By key: with the key beside it (sig=, sig%3D, ...) no secret needs to be known.
    if form != "signature-alone":
        assert not shows(Redactor()(printed), _SIG), hidden(Redactor()(printed), _SIG)
    # And what the masks of the action's steps register covers each form.
    from modelfunc.action import io

    masks = [line.split("::", 2)[2].replace("%25", "%") for line in io.mask_connection_string(
        f"BlobEndpoint=http://127.0.0.1:1/{DEV_ACCOUNT};SharedAccessSignature={_SAS}").splitlines()]
    masked = printed
    for value in sorted(masks, key=len, reverse=True):
        masked = masked.replace(value, "***")
    assert not shows(masked, _SIG), hidden(masked, _SIG)
    assert redact  # the process-wide redactor is the same class, fed by storage.blob_service and action.io.mask


LEAKY_SAS = '''
import json, os, subprocess, sys
from urllib.parse import quote, unquote

SIG = {sig!r}
SAS = {sas!r}
CONN = "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;SharedAccessSignature=" + SAS
FORMS = {forms}


def _print_in_a_child(shape):
    text = eval(FORMS[shape])(SAS, SIG)
    code = "import sys; sys.stdout.write(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, text], env={{**os.environ, "MODELFUNC_CONNECTION_STRING": CONN}},
                   capture_output=True, text=True)
{tests}

def test_clean():
    out = subprocess.run([sys.executable, "-c", "print('nothing secret')"],
                         env={{**os.environ, "MODELFUNC_CONNECTION_STRING": CONN}}, capture_output=True, text=True)
    assert out.stdout == "nothing secret\\n"
'''


@pytest.fixture(scope="module")
def guard_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/support/secrets_guard.py over a suite whose tests each print the SAS of a child's connection string in one
    form."""
    work = tmp_path_factory.mktemp("guard")
    tests = "".join(f"\n\ndef test_prints_{cid.replace('-', '_')}():\n    _print_in_a_child({cid!r})\n"
                    for cid, _, _ in SAS_FORMS)
    forms = "{" + ", ".join(f"{cid!r}: {shape!r}" for cid, _, shape in SAS_FORMS) + "}"
    (work / "conftest.py").write_text('pytest_plugins = ["support.secrets_guard"]\n')
    (work / "test_leaky_sas.py").write_text(LEAKY_SAS.format(sig=_SIG, sas=_SAS, forms=forms, tests=tests))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "--basetemp",
                           str(work / "base"), str(work / "test_leaky_sas.py")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=180)
    return proc.stdout + proc.stderr


@pytest.mark.xdist_group("guard_run")  # one worker runs the module-scoped guard_run once for all five forms
@pytest.mark.parametrize("form", [c[0] for c in SAS_FORMS])
def test_the_secrets_guard_catches_the_sas_in_every_printed_form(guard_run: str, form: str) -> None:
    test = f"test_prints_{form.replace('-', '_')}"
    section = guard_run.split(f"ERROR at teardown of {test} ", 1)[-1].split("\n____", 1)[0]
    assert f"ERROR test_leaky_sas.py::{test} - a secret" in guard_run, guard_run
    assert "a secret reached an output:" in section and re.search(r"\d+ secret value\(s\)", section), guard_run
    assert "ERROR test_leaky_sas.py::test_clean" not in guard_run, guard_run
    assert not shows(guard_run, _SIG), "the guard printed the secret"


@pytest.fixture
def sas(azurite) -> tuple[str, str]:  # noqa: ANN001
    return sas_connection(azurite.port)


@pytest.mark.parametrize("case", [c[0] for c in SAS_PRINTED])
def test_a_sas_is_printed_nowhere(case: str, example, serve, azurite, sas, tmp_path, monkeypatch,
                                  capfd) -> None:  # noqa: ANN001
    conn, sig = sas
    tag = uuid.uuid4().hex[:8]
    repo = tagged_repo(example, tag)
    if case == "blob-test-pass-report":
        serve(repo, connection_string=conn)
        report = tmp_path / "report.json"
        result = run_modelfunc("blob-test", str(repo), "--timeout", "60", "--report", str(report),
                               env={"MODELFUNC_CONNECTION_STRING": conn})
        assert result.returncode == 0, hidden(result.stdout + result.stderr, sig)
        target = f"devstoreaccount1 at http://127.0.0.1:{azurite.port}/devstoreaccount1/\n"
        assert target in result.stdout, hidden(result.stdout, sig)
        for text in (result.stdout, result.stderr, report.read_text()):
            assert not shows(text, sig), hidden(text, sig)
    elif case == "blob-test-storage-error":
        dead, dead_sig = sas_connection(9)
        result = run_modelfunc("blob-test", str(repo), "--timeout", "5", env={"MODELFUNC_CONNECTION_STRING": dead})
        assert result.returncode == 1, hidden(result.stdout + result.stderr, dead_sig)
        said = "error: storage account devstoreaccount1 at http://127.0.0.1:9/devstoreaccount1/ failed" in result.stderr
        assert said, hidden(result.stderr, dead_sig)
        assert not shows(result.stdout + result.stderr, dead_sig), hidden(result.stderr, dead_sig)
    else:
        from support.act_harness import Log
        from support.action_step import Step, load_script

        capfd.readouterr()
        (tmp_path / "step").mkdir()
        step = Step(tmp_path / "step", monkeypatch)
        step.inputs(model_repo=str(repo), connection_string=conn, blob_test_timeout="60",
                    build_image="false")
        code = load_script("up").main([])
        captured = capfd.readouterr()
        log = Log()
        log.feed(captured.out)
        log.feed(captured.err)
        assert code == 0, hidden(log.text(), sig)
        masked_alone = sig in log.masks and quote(sig, safe="") in log.masks  # the signature alone, raw, URL-encoded
        assert masked_alone, "the SAS signature has no mask of its own (raw and URL-encoded)"
        outputs = step.outputs()
        report = Path(outputs["report-path"]).read_text()
        for where, text in (("log", log.text()), ("summary", step.summary_text()), ("outputs", json.dumps(outputs)),
                            ("report", report)):
            assert not shows(text, sig), f"the SAS shows in the {where}"


# ================================================================== (4) '..' in blob paths


@pytest.mark.parametrize("case", [c[0] for c in DOT_DOT])
def test_no_blob_path_leaves_its_container(case: str, example, serve, azurite, sas, tmp_path) -> None:  # noqa: ANN001
    conn, _ = sas
    tag = uuid.uuid4().hex[:8]
    repo = tagged_repo(example, tag)
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    victim = storage.get_container_client(f"victim-{tag}")
    victim.create_container()
    victim.upload_blob("x.json", SAMPLE)
    if case in ("invoke-into-another-container", "invoke-encoded-dot-dot"):
        host = serve(repo, connection_string=conn)
        dots = "%2e%2e" if case == "invoke-encoded-dot-dot" else ".."
        resp = httpx.post(f"{host.url}/admin/functions/score_blob",
                          json={"input": f"in-{tag}/{dots}/victim-{tag}/x.json"}, timeout=30)
        assert resp.status_code == 400, resp.text
        assert "path segment, which would lead out of its container" in resp.json()["message"], resp.text
        time.sleep(0.5)
        assert sorted(b.name for b in victim.list_blobs()) == ["x.json"]  # nothing written beside the victim
        assert host.status()["blob_listeners"]["score_blob"]["scored"] == 0
    elif case == "output-path-leaves-container":
        (repo / "modelfunc.yaml").write_text(
            f"trigger:\n  type: blob\n  input_path: in-{tag}/{{blobname}}.json\n"
            f"  output_path: output/../in-{tag}/{{blobname}}_out.json\n")
        result = run_modelfunc("package", str(repo), "--no-build")
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"trigger.output_path: 'output/../in-{tag}/{{blobname}}_out.json' has a '..' path segment, which " \
               "would lead out of container 'output'" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and not (repo / "build").exists()
    elif case == "app-output-binding-leaves-container":
        app = package_app(repo)
        source = (app / "function_app.py").read_text()
        assert f"'out-{tag}/" in source
        (app / "function_app.py").write_text(source.replace(f"'out-{tag}/", f"'out-{tag}/../in-{tag}/"))
        hosts = Hosts(tmp_path)
        host = hosts.start(app, connection_string=azurite.connection_string, expect_ready=False)
        assert host.process.wait(timeout=60) == 1, host.output()
        assert "function score_blob: the path of output binding 'output' is invalid" in host.output(), \
            host.output()
        assert "has a '..' path segment" in host.output() and "Traceback" not in host.output()
    else:
        host = serve(repo, connection_string=azurite.connection_string)
        url = storage.get_blob_client(f"in-{tag}", "a/x/b.json").url.replace("/x/", "/%2E%2E/")
        _raw_put(url, b'{"data": [[1]]}')
        names = [b.name for b in storage.get_container_client(f"in-{tag}").list_blobs()]
        assert names == ["a/../b.json"], names  # the emulator keeps the name as written
        wait_until(lambda: host.status()["blob_listeners"]["score_blob"]["rejected"] == 1, 20, "the rejection")
        time.sleep(1.0)  # ten more scans of the container
        stats = host.status()["blob_listeners"]["score_blob"]
        assert stats["rejected"] == 1 and stats["scored"] == stats["failed"] == 0, stats
        assert host.output().count("left in-") == 1, host.output()
        assert f"left in-{tag}/'a/../b.json' alone (never read)" in host.output(), host.output()
        assert not storage.get_blob_client(f"out-{tag}", "b_out.json").exists()


def _raw_put(url: str, body: bytes) -> None:
    """Upload ``body`` to ``url`` as written (percent-encoded dots kept), Shared Key signed for Azurite's account."""
    import hashlib
    import hmac
    from email.utils import formatdate
    from urllib.parse import urlsplit

    headers = {"x-ms-date": formatdate(time.time(), usegmt=True), "x-ms-version": "2021-08-06",
               "x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
    path = urlsplit(url).path
    canonical = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
    to_sign = "\n".join(["PUT", "", "", str(len(body)), "", headers["Content-Type"], "", "", "", "", "", ""]) + "\n" \
        + canonical + f"/{DEV_ACCOUNT}{path}"
    signature = base64.b64encode(hmac.new(base64.b64decode(DEV_KEY), to_sign.encode(), hashlib.sha256).digest())
    headers["Authorization"] = f"SharedKey {DEV_ACCOUNT}:{signature.decode()}"
    with httpx.Client() as client:
        request = client.build_request("PUT", url, headers=headers, content=body)
        request.url = httpx.URL(url)
        resp = client.send(request)
    assert resp.status_code == 201, resp.text


# ------------------------------------------------------------------ the property-based layer over names and patterns


def test_random_blob_names_and_patterns_never_leave_the_container(capsys) -> None:  # noqa: ANN001
    """Hypothesis over blob names (unicode, '..', '%2e%2e', slashes and backslashes, 1,024+ characters, 254+ segments)
    and path patterns, through the normaliser, the pattern matcher and the formatter: nothing raises but
    BlobPathError; every name accepted resolves, in the URL the storage SDK sends, inside its container; every match
    formats back to the name it came from and agrees with the regex it replaced; all within 15 s of CPU."""
    from azure.storage.blob import BlobClient
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from modelfunc.blobpath import BlobPath, BlobPathError, check_blob_name, split
    from requests.models import PreparedRequest

    account = f"http://127.0.0.1:10000/{DEV_ACCOUNT}"

    def stays_inside(container: str, name: str) -> None:
        url = BlobClient(account, container, name).url
        prepared = PreparedRequest()
        prepared.prepare_url(url, None)  # what requests (the SDK's transport) sends: dot segments resolved
        sent = prepared.path_url
        assert sent.startswith(f"/{DEV_ACCOUNT}/{container}/"), (name, sent)
        assert sent == url[len("http://127.0.0.1:10000"):], (name, url, sent)  # nothing resolved away

    def regex_match(path: BlobPath, name: str) -> dict[str, str] | None:  # the matcher before: the oracle
        parts, last = [], 0
        for m in re.finditer(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", path.blob_pattern):
            parts += [re.escape(path.blob_pattern[last:m.start()]), f"(?P<{m.group(1)}>.+)"]
            last = m.end()
        parts.append(re.escape(path.blob_pattern[last:]))
        found = re.compile("^" + "".join(parts) + "$", re.DOTALL).match(name)
        return found.groupdict() if found else None

    pieces = st.sampled_from(["..", ".", "%2e%2e", "%2E.", "%252e%252e", ".%2e", "a", "b.json", "", "\\", "..\\x",
                              "ü", "x y", "{", "}", "..json", "...", "%", "%zz", "/"])
    names = st.one_of(
        st.text(max_size=40),
        st.lists(pieces, max_size=10).map("/".join),
        st.lists(pieces, max_size=10).map("".join),
        st.text(alphabet="./\\%2eE{}ab", max_size=40),
        st.integers(1000, 1100).map(lambda n: "a" * n),
        st.integers(250, 260).map(lambda n: "/".join(["a"] * n)),
        st.integers(100, 2000).map(lambda n: "-" * n + "x"),  # worst case of a backtracking matcher
    )
    tokens = st.one_of(st.sampled_from(["{blobname}", "{a}", "{b}", "/", ".", "..", "-", ".json", "%2e", "x", "\\"]),
                       st.text(max_size=4))
    patterns = st.lists(tokens, min_size=1, max_size=8).map(lambda ts: "input/" + "".join(ts))
    counts = {"names": 0, "patterns": 0, "accepted": 0, "matched": 0}

    @settings(max_examples=800, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(name=names)
    def names_stay_inside(name: str) -> None:
        counts["names"] += 1
        try:
            assert check_blob_name(name) == name
        except BlobPathError:
            return
        counts["accepted"] += 1
        stays_inside("input", name)
        try:
            container, rest = split(f"input/{name}")
        except BlobPathError:
            raise AssertionError(f"split refused an accepted name: {name!r}") from None
        assert (container, rest) == ("input", name)

    @settings(max_examples=800, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(pattern=patterns, out=patterns, data=st.data())
    def patterns_match_inside(pattern: str, out: str, data: st.DataObject) -> None:
        counts["patterns"] += 1
        try:
            path = BlobPath.parse(pattern)
        except BlobPathError:
            return
        if data.draw(st.booleans()):  # a name of the pattern's shape, its placeholders filled with anything
            fill = {p: data.draw(names) for p in path.placeholders}
            name = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: fill[m.group(1)], path.blob_pattern)
        else:
            name = data.draw(names)
        values = path.match(name)
        if len(name) <= 60:
            try:
                check_blob_name(name)
                safe = True
            except BlobPathError:
                safe = False
            assert values == (regex_match(path, name) if safe else None), (pattern, name)
        if values is None:
            return
        counts["matched"] += 1
        assert all(values.values()) and path.format(values) == name
        stays_inside(path.container, name)
        try:
            target = BlobPath.parse(out)
            formatted = target.format({**dict.fromkeys(target.placeholders, "x"), **values})
        except BlobPathError:
            return
        stays_inside(target.container, formatted)

    # The budget is CPU time of this thread (what the fuzz itself costs): on a quiet machine the same as the wall
    # clock, and not stretched by tests running on the other cores (pytest-xdist).
    started, started_cpu = time.monotonic(), time.thread_time()
    names_stay_inside()
    patterns_match_inside()
    elapsed, cpu = time.monotonic() - started, time.thread_time() - started_cpu
    with capsys.disabled():
        print(f"\nfuzz (blob names and patterns): {counts['names']} names ({counts['accepted']} accepted) and "
              f"{counts['patterns']} pattern/name pairs ({counts['matched']} matched) in {cpu:.1f} s of CPU "
              f"({elapsed:.1f} s)")
    assert counts["names"] >= 600 and counts["patterns"] >= 600 and counts["matched"] >= 100
    assert cpu <= 15, f"the fuzz took {cpu:.1f} s of CPU"


# ================================================================== (7), (8) poison blobs

FAILING_SCORE = '''\
"""run() as a hostile or careless entry script ends it: how, the blob says."""
import ctypes
import json
import os
import sys


def init():
    pass


def run(data):
    doc = json.loads(data)
    with open(os.environ["RUN_LOG"], "a") as f:
        f.write(doc["id"] + "\\n")
    how = doc.get("how")
    if how == "sys-exit":
        sys.exit(3)
    if how == "keyboard-interrupt":
        raise KeyboardInterrupt
    if how == "os-exit":
        os._exit(7)
    if how == "segfault":
        ctypes.string_at(0)
    return {"id": doc["id"]}
'''


def failing_app(example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, Path]:  # noqa: ANN001
    """The blob example on containers of its own with FAILING_SCORE, packaged; each run() logs its try to RUN_LOG:
    (the tag, the app, the run log)."""
    tag = uuid.uuid4().hex[:8]
    repo = tagged_repo(example, tag)
    (repo / "score.py").write_text(FAILING_SCORE)
    run_log = tmp_path / "runs.log"
    monkeypatch.setenv("RUN_LOG", str(run_log))
    return tag, package_app(repo), run_log


@pytest.mark.parametrize("how", [c[0] for c in RUN_ENDS])
def test_a_run_that_exits_is_tried_five_times_then_poisoned(how: str, example, serve, azurite, tmp_path,
                                                             monkeypatch) -> None:  # noqa: ANN001
    """As the Functions host: https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#poison-blobs
    (5 tries by default, then the webjobs-blobtrigger-poison queue; SystemExit and KeyboardInterrupt are failures)."""
    tag, app, run_log = failing_app(example, tmp_path, monkeypatch)
    threshold = without_poison_threshold(app)
    host = serve(app, connection_string=azurite.connection_string)
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    storage.get_blob_client(f"in-{tag}", "boom.json").upload_blob(json.dumps({"id": "boom", "how": how}).encode())
    storage.get_blob_client(f"in-{tag}", "fine.json").upload_blob(b'{"id": "fine"}')
    wait_until(lambda: host.status()["blob_listeners"]["score_blob"]["poisoned"] == 1, 30, "the poisoning")
    time.sleep(1.0)  # ten more scans: no further try
    assert run_log.read_text().split().count("boom") == threshold
    stats = host.status()["blob_listeners"]["score_blob"]
    assert (stats["failed"], stats["retried"], stats["poisoned"], stats["scored"]) == \
           (threshold, threshold - 1, 1, 1), stats
    output = host.output()
    assert f"attempt 1 of {threshold}" in output and f"attempt {threshold} of {threshold}" in output, output
    assert ("SystemExit: 3" if how == "sys-exit" else "KeyboardInterrupt") in output
    assert f"gave up on in-{tag}/boom.json after {threshold} attempt(s)" in output
    assert "moved to the poison queue (queue webjobs-blobtrigger-poison" in output
    assert any("gave up on" in e for e in host.status()["errors"])
    (message,) = poison_messages(azurite.connection_string, f"in-{tag}")
    etag = storage.get_blob_client(f"in-{tag}", "boom.json").get_blob_properties().etag.strip('"')
    assert message == {"Type": "BlobTrigger", "FunctionId": message["FunctionId"], "BlobType": "BlockBlob",
                       "ContainerName": f"in-{tag}", "BlobName": "boom.json", "ETag": etag}
    assert message["FunctionId"].endswith(".Functions.score_blob")
    json.loads(wait_for_blob(storage, f"out-{tag}", "fine_out.json"))  # the other blobs go on being scored


@pytest.mark.parametrize("how", [c[0] for c in RUN_KILLS])
def test_a_run_that_kills_the_host_is_poisoned_after_the_restarts_it_cost(how: str, example, azurite, tmp_path,
                                                                          monkeypatch) -> None:  # noqa: ANN001
    """Each try is recorded before run(), as the Functions host's dequeue count counts it:
    https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#poison-blobs
    (On the suite's Azurite: the app listens to containers of its own, and the poison message is told by its
    container.)"""
    tag, app, run_log = failing_app(example, tmp_path, monkeypatch)
    threshold = threshold_of(app)
    hosts = Hosts(tmp_path)
    connection = azurite.connection_string
    storage = BlobServiceClient.from_connection_string(connection)
    storage.create_container(f"in-{tag}")
    storage.get_blob_client(f"in-{tag}", "boom.json").upload_blob(json.dumps({"id": "boom", "how": how}).encode())
    try:
        for attempt in range(1, threshold + 1):
            host = hosts.start(app, connection_string=connection, expect_ready=False)
            code = host.process.wait(timeout=60)
            assert code != 0, f"start {attempt} did not die:\n{host.output()}"
            assert run_log.read_text().split().count("boom") == attempt
        host = hosts.start(app, connection_string=connection)  # now it stays up
        wait_until(lambda: host.status()["blob_listeners"]["score_blob"]["poisoned"] == 1, 30, "the poisoning")
        storage.get_blob_client(f"in-{tag}", "fine.json").upload_blob(b'{"id": "fine"}')
        wait_for_blob(storage, f"out-{tag}", "fine_out.json", host=host)
        assert host.process.poll() is None
        assert run_log.read_text().split().count("boom") == threshold  # not run again
        # logged once the poison message is written, by the poisoning thread: the fine blob may be done first
        gave_up = (f"gave up on in-{tag}/boom.json after {threshold} attempt(s): the host stopped during each "
                   "of them")
        wait_until(lambda: gave_up in host.output(), 30, f"{gave_up!r} in the host's log")
        (message,) = poison_messages(connection, f"in-{tag}")
        assert message["BlobName"] == "boom.json" and message["ContainerName"] == f"in-{tag}"
        assert hosts.start(app, connection_string=connection).status()["state"] == "Running"
    finally:
        hosts.stop_all()


# ================================================================== (9), (10) blob receipts


def _receipt_hosts(storage: BlobServiceClient, container: str) -> set[str]:
    return {b.name.split("/")[1] for b in storage.get_container_client("azure-webjobs-hosts").list_blobs(
        name_starts_with="blobreceipts/") if f"/{container}/" in b.name}


@pytest.mark.parametrize("case", [c[0] for c in RECEIPTS])
def test_blob_receipts_are_kept_per_app_and_survive_their_container(case: str, example, serve, azurite, tmp_path,
                                                                     monkeypatch) -> None:  # noqa: ANN001
    tag = uuid.uuid4().hex[:8]
    if case == "receipts-container-deleted":
        repo = tagged_repo(example, tag)
        (repo / "score.py").write_text(FAILING_SCORE)
        run_log = tmp_path / "runs.log"
        monkeypatch.setenv("RUN_LOG", str(run_log))
        with Azurite(location=tmp_path / "azurite") as emulator:
            storage = BlobServiceClient.from_connection_string(emulator.connection_string)
            hosts = Hosts(tmp_path)
            try:
                host = hosts.start(repo, connection_string=emulator.connection_string)
                storage.get_blob_client(f"in-{tag}", "one.json").upload_blob(b'{"id": "one"}')
                wait_for_blob(storage, f"out-{tag}", "one_out.json", host=host)
                storage.delete_container("azure-webjobs-hosts")
                storage.get_blob_client(f"in-{tag}", "two.json").upload_blob(b'{"id": "two"}')
                wait_for_blob(storage, f"out-{tag}", "two_out.json", host=host)
                time.sleep(1.5)  # fifteen more scans
                assert sorted(run_log.read_text().split()) == ["one", "two"], run_log.read_text()
                assert host.status()["blob_listeners"]["score_blob"]["scored"] == 2
                assert "the receipts container azure-webjobs-hosts is gone; creating it again" in host.output()
                receipts = [b.name for b in storage.get_container_client("azure-webjobs-hosts").list_blobs()]
                assert any(r.endswith(f"/in-{tag}/two.json") for r in receipts), receipts
            finally:
                hosts.stop_all()
        return
    storage = BlobServiceClient.from_connection_string(azurite.connection_string)
    if case == "two-apps-default-build-folder":  # (app, settings, output container)
        runs = [(tagged_repo(example, tag, out=out), (), f"{out}-{tag}") for out in ("outa", "outb")]
    else:
        repo, site = tagged_repo(example, tag), f"scorer-{tag}"
        runs = [(repo, ("--setting", f"WEBSITE_SITE_NAME={site}", "--setting", f"WEBSITE_SLOT_NAME={slot}"),
                 f"out-{tag}") for slot in ("production", "staging")]
    hosts = Hosts(tmp_path)
    try:
        for i, (repo, extra, out) in enumerate(runs):
            host = hosts.start(repo, connection_string=azurite.connection_string, extra=extra)
            if i == 0:
                storage.get_blob_client(f"in-{tag}", "p.json").upload_blob(SAMPLE)
            assert json.loads(wait_for_blob(storage, out, "p_out.json", host=host)) == EXPECTED
            assert host.stop() == 0
            storage.get_blob_client(out, "p_out.json").delete_blob()
    finally:
        hosts.stop_all()
    ids = _receipt_hosts(storage, f"in-{tag}")
    assert len(ids) == 2, ids
    if case == "two-slots-of-one-app":
        assert ids == {f"scorer-{tag}", f"scorer-{tag}-staging"}
    else:
        assert "build" not in ids and all(re.fullmatch(r"[a-z0-9]+-\d+", i) and len(i) <= 32 for i in ids), ids


# ================================================================== (13) signals to `modelfunc up`

# run() holds the sample test open until the test has sent its signal (it makes the file RELEASE names): a window
# that does not close on a loaded machine, as a fixed sleep did, and no wait once the signal is sent.
SLOW_SCORE = '''\
import os
import time


def init():
    pass


def run(data):
    deadline = time.monotonic() + 60
    while not os.path.exists(os.environ["RELEASE"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [661.6371, 362.4341]
'''


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("signame", [c[0] for c in SIGNALS])
def test_a_signal_to_up_leaves_no_process_behind(signame: str, example, tmp_path) -> None:  # noqa: ANN001
    repo = example("diabetes-blob")
    (repo / "score.py").write_text(SLOW_SCORE)
    release = tmp_path / "release"
    release.touch()  # run() called directly (before the host starts) returns at once
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RELEASE": str(release)}
    env.pop("MODELFUNC_CONNECTION_STRING", None)
    log = tmp_path / "up.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "modelfunc", "up", str(repo), "--timeout", "60", "--image",
                                 "off"], stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env)
    children: set[int] = set()
    try:
        wait_until(lambda: "==> start the local host" in log.read_text() or proc.poll() is not None, 120,
                   "the host's start")
        release.unlink()  # the host's run() now waits for it
        wait_until(lambda: "==> test the sample" in log.read_text() or proc.poll() is not None, 120, "the sample test")
        assert proc.poll() is None, log.read_text()
        children = _descendants(proc.pid)
        assert len(children) >= 2, children  # the local host and Azurite (its blob and queue services)
        proc.send_signal(getattr(signal, signame))
        release.touch()
        code = proc.wait(timeout=60)
        wait_until(lambda: not any(_alive(p) for p in children), 20, "the children's end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:  # what a failing run left behind: not left to the rest of the suite
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    if signame == "SIGKILL":
        assert code == -signal.SIGKILL
    else:
        assert code == 1, log.read_text()
        assert "Aborted!" in log.read_text()


# ================================================================== (18) admin invoke of a missing blob


@pytest.mark.parametrize("case", [c[0] for c in ADMIN])
def test_admin_invoke_of_a_missing_blob_is_a_404_naming_it(case: str, example, serve, azurite) -> None:  # noqa: ANN001
    tag = uuid.uuid4().hex[:8]
    host = serve(tagged_repo(example, tag), connection_string=azurite.connection_string)
    resp = httpx.post(f"{host.url}/admin/functions/score_blob", json={"input": f"in-{tag}/nope.json"}, timeout=30)
    assert resp.status_code == 404, resp.text
    assert resp.json()["message"].startswith(f"blob in-{tag}/nope.json does not exist"), resp.text


# ================================================================== the rows of docs/bad-inputs.md


def test_every_case_is_a_row_with_a_test_of_its_own() -> None:
    ids = [(area, cid) for area, cid, *_ in ROWS]
    assert len(set(ids)) == len(ids), "two rows share an id"
    module = sys.modules[__name__]
    for *_, node in ROWS:
        name = node.split("::", 1)[1].split("[", 1)[0]
        assert callable(getattr(module, name, None)), node
