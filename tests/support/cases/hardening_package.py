"""Issue 13, packaging, image, runtime and local host: the cases render/test_hardening_package.py runs and the rows of
docs/bad-inputs.md made from them."""

from __future__ import annotations

from support.core import EXAMPLES

FILE = 'test_hardening_package.py'


def node(test: str, case_id: str) -> str:
    return f"{FILE}::{test}[{case_id}]"


FIFO, SOCKET = "<fifo>", "<socket>"


# (id, name in model/, link target or FIFO/SOCKET, what the error says after "error: <repo>/model/<name>: ")
MODEL_ENTRIES = [
    ("model-link-to-etc-shadow", "shadow", "/etc/shadow",
     "is a symbolic link to /etc/shadow, outside the model repo: model files are copied only from inside the repo"),
    ("model-link-to-proc-self-environ", "environ", "/proc/self/environ",
     "is a symbolic link to /proc/self/environ, outside the model repo"),
    ("model-link-relative-out-of-the-repo", "creds.json", "../../secret/creds.json",
     "is a symbolic link to ../../secret/creds.json, outside the model repo"),
    ("model-folder-link-out-of-the-repo", "extra", "<tmp>/secret",
     "is a symbolic link to <tmp>/secret, outside the model repo"),
    ("model-link-to-nothing", "weights.bin", "missing/weights.bin",
     "is a symbolic link to missing/weights.bin, which does not exist: the model would ship without it"),
    ("model-link-loop", "again", ".",
     "is a symbolic link to ., a folder above it: the model directory would never end"),
    ("model-named-pipe", "pipe.bin", FIFO, "is a named pipe (FIFO), not a regular file: only files and folders can be "
                                           "model files"),
    ("model-socket", "s.sock", SOCKET, "is a socket, not a regular file"),
]


MODEL_HINT = "hint: copy the file itself into the model directory"


# (id, the FIFO's path in the repo, score.py's extra first line, error (exit 2) or the line `package` prints (exit 0))
FIFO_CASES = [
    ("fifo-module-imported-by-score-py", "helper.py", "import helper\n",
     "error: <repo>/helper.py: is a named pipe (FIFO), not a regular file, and score.py imports it: it cannot be read"),
    ("fifo-module-in-an-imported-package", "helpers/extra.py", "import helpers\n",
     "  left out: helpers/extra.py (a named pipe (FIFO), not a regular file: never read)"),
    ("fifo-named-py-beside-score-py", "notes.py", "",
     "  left out: notes.py (a named pipe (FIFO), not a regular file: never read)"),
]


# (id, score.py's stuck line, what the stack shows)
IMPORT_HANGS = [
    ("import-sleeps-for-ever", "time.sleep(3600)", "time.sleep(3600)"),
    ("import-waits-on-an-event", "threading.Event().wait()", "threading.Event().wait()"),
    ("import-loops-for-ever", "while True:\n    pass", "while True:"),
]


IMPORT_HANG_MESSAGE = ("error: importing <app>/function_app.py did not finish within 3 s: the app (score.py, or a "
                       "module it imports) is stuck at import, before init(); it is here (most recent call last):")


INIT_HANGS = [("init-never-returns", "init() of score.py did not finish within 1 s; init() is at (most recent call "
                                     "last):")]


DEEP = 100_000


DEEP_MESSAGE = "The body is nested too deeply to be parsed as JSON"


DEEP_BODY = b'{"data": ' + b"[" * DEEP + b"]" * DEEP + b"}"


# (id, score.py (None: the example's @input_schema one), the body, status, the start of the message)
DEEP_HTTP = [("http-json-nested-100000-deep-to-a-schema-run", None, DEEP_BODY, 400, DEEP_MESSAGE),
             ("http-json-nested-100000-deep-to-a-plain-run", EXAMPLES / "diabetes-blob" / "score.py", DEEP_BODY, 400,
              DEEP_MESSAGE)]


DEEP_BLOBS = [("blob-json-nested-100000-deep", b"[" * DEEP + b"]" * DEEP, 400, DEEP_MESSAGE)]


# (id, option, value, what the error says)
BAD_REFERENCES = [
    ("base-image-newline-adds-an-instruction", "--base-image", "modelfunc-local/python:3.11\nRUN echo pwned >/pwned",
     "error: --base-image: 'modelfunc-local/python:3.11\\nRUN echo pwned >/pwned' is not an image reference"),
    ("base-image-trailing-newline", "--base-image", "modelfunc-local/python:3.11\n",
     "error: --base-image: 'modelfunc-local/python:3.11\\n' is not an image reference"),
    ("base-image-with-a-space", "--base-image", "python 3.11",
     "error: --base-image: 'python 3.11' is not an image reference"),
    ("base-image-bad-digest", "--base-image", "python@sha256:xyz",
     "error: --base-image: 'python@sha256:xyz' is not an image reference"),
    ("tag-trailing-newline", "--tag", "v1\n", "error: --tag: 'v1\\n' is not an image tag"),
]


# (id, how the earlier run ended, what the next `package` prints)
STAGING_CASES = [
    ("staging-left-by-sigkill", "before-the-swap",
     "removed .out.<random>: the staging folder of a package run that never finished (pid <pid>, started <time>, no "
     "longer running)"),
    ("staging-left-by-sigkill-between-the-renames", "between-the-renames",
     "removed .out.<random>: … no longer running); put back the output it was replacing as out"),
    ("staging-of-a-run-still-going", "alive",
     "package finishes; the other run's staging folder is left alone (its lock is held), and that run finishes too"),
]


# (id, what is done to the cache entry, the reason the next run gives)
CACHE_FAULTS = [
    ("layer-cache-digest-file-empty", "empty", "dependencies-<key>.sha256 is empty"),
    ("layer-cache-digest-file-not-a-digest", "none", "dependencies-<key>.sha256 holds 'None', not a sha256 digest"),
    ("layer-cache-tar-changed", "tar", "dependencies-<key>.tar has digest sha256:…, not the sha256:… recorded for it"),
    ("layer-cache-digest-file-missing", "missing", "dependencies-<key>.sha256 is missing"),
]


CACHE_MESSAGE = ("dependencies: the cached layer dependencies-<key>.tar cannot be used (<reason>): building it "
                 "again, and the cache entry is replaced")


NO_SPACE = [("disk-full-while-writing-the-output",
             "error: cannot write <tmp>/full/out/layers/dependencies.tar: No space left on device",
             "hint: free some space on that disk, or choose another --out (nothing was replaced: the previous output "
             "is as it was)")]


# (id, which cache is read-only, what `package` says (it succeeds))
READ_ONLY_CACHES = [
    ("layer-cache-read-only", "layers", "dependencies: the resolved layer is not kept for the next run: Read-only file "
                                        "system (<cache>/modelfunc)"),
    ("pip-cache-read-only", "pip", "dependencies: resolving for CPython 3.11 on linux/x86-64 (pip, wheels only)"),
]


# (id, how --out is given, what the error says)
OUT_CASES = [
    ("out-is-a-mount-point", "mount", "error: output directory <tmp>/mnt is a mount point: modelfunc replaces the "
                                      "output directory as a whole"),
    ("out-is-dot-inside-the-previous-output", "dot-in-previous",
     "error: output directory . is the current directory: modelfunc replaces the output directory as a whole, which "
     "would leave this shell in a deleted directory"),
    ("out-is-dot-in-an-empty-folder", "dot-in-empty", "error: output directory . is the current directory"),
]


# (id, the file's bytes (None: a folder of that name), what the error says after "error: <app>/local.settings.json")
BAD_LOCAL_SETTINGS = [
    ("local-settings-not-json", b'{"Values": {"A": "1",}}', ":1: is not valid JSON: Expecting property name enclosed "
                                                            "in double quotes"),
    ("local-settings-not-utf8", b'{"Values": {"A": "\xff\xfe"}}',
     ": is not UTF-8 text (invalid start byte at byte 18)"),
    ("local-settings-an-array", b'[{"Values": {}}]', ': must be a JSON object with a "Values" object, got an array'),
    ("local-settings-values-an-array", b'{"Values": ["A=1"]}', ': "Values" must be an object of app settings (name: '
                                                              'value), got an array'),
    ("local-settings-value-an-object", b'{"Values": {"A": {"b": 1}}}', ": Values.A: an app setting is a string, got "
                                                                      "an object"),
    ("local-settings-nested-too-deep", b'{"Values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     ": is not valid JSON: nested too deeply"),
    ("local-settings-a-folder", None, ": is not a regular file"),
]


# (id, score.py (None: the example's, with @input_schema), methods, what the error says)
PLAIN_SCORE = EXAMPLES / "diabetes-blob" / "score.py"


BAD_METHODS = [
    ("put-listed-for-an-input-schema-run", None, "[GET, POST, PUT]",
     "error: <repo>/modelfunc.yaml:6: trigger.methods: PUT cannot reach run() in score.py: only a @rawhttp run() takes "
     "it; an @input_schema run() gets GET (the query), POST (the body) and OPTIONS, and Azure ML's scoring server "
     "answers any other method 405, as this app would"),
    ("patch-and-delete-listed-for-a-plain-run", PLAIN_SCORE, "[POST, PATCH, DELETE]",
     "error: <repo>/modelfunc.yaml:6: trigger.methods: PATCH, DELETE cannot reach run() in score.py: only a @rawhttp "
     "run() takes them; an undecorated run() gets"),
]


# (id, how, what the user sees)
LISTEN_CASES = [
    ("serve-host-ipv6-loopback", "ipv6", "Host running at http://[::1]:<port>"),
    ("serve-host-ipv6-where-it-is-not-configured", "netns",
     "error: cannot listen on [::1]:0: ::1 is not an address of this machine (an IPv6 address: is IPv6 enabled, and "
     "is the address on one of its interfaces?) … hint: pass --host with an address of this machine"),
    ("serve-port-in-use", "busy",
     "error: cannot listen on 127.0.0.1:<port>: the port is in use (another program, or another modelfunc serve, "
     "listens there) … hint: pass another --port (0 picks a free one)"),
]


LIMIT = 1024 * 1024


HEADERS_TIMEOUT = 2


# (id, host, what the client does, status, the start of the message)
LIMIT_CASES = [
    ("body-over-the-limit-by-content-length", "limited", "content-length", 413,
     f"The request body is larger than the limit of {LIMIT} bytes (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, 100 MB by "
     "default as on the Functions host)"),
    ("body-over-the-default-limit-of-100-mb", "default", "content-length", 413,
     "The request body is larger than the limit of 104857600 bytes"),
    ("chunked-body-over-the-limit", "limited", "chunked", 413, f"The request body is larger than the limit of {LIMIT}"),
    ("headers-dribbled-a-byte-at-a-time", "limited", "dribble-headers", 408,
     f"The request headers did not arrive within {HEADERS_TIMEOUT} s"),
    ("connection-that-sends-nothing", "limited", "silent", 408,
     f"The request headers did not arrive within {HEADERS_TIMEOUT} s"),
    ("body-dribbled-a-byte-a-second", "limited", "dribble-body", 408,
     "The request body arrived too slowly: less than 240 bytes per second after 5 s"),
    ("headers-larger-than-64-kib", "limited", "big-headers", 431,
     "The request line and headers are larger than 65536 bytes"),
]


ELSEWHERE = "127.0.0.2"  # a loopback alias: "elsewhere" by design (only 127.0.0.1, ::1 and localhost are local-only)


# (id, what the request carries, status)
ADMIN_CASES = [
    ("admin-bound-elsewhere-without-the-key", "none", 401),
    ("admin-bound-elsewhere-with-a-wrong-key", "wrong", 401),
]


ADMIN_MESSAGE = "The admin API needs the host's master key: send it in the x-functions-key header or the code query " \
                "parameter"


MANY_PARTS = b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(1100)) \
    + b"--b--\r\n"


# (id, body, content type, status, the start of the message)
FORM_LIMIT = [("multipart-body-of-more-than-1000-parts", MANY_PARTS, "multipart/form-data; boundary=b", 413,
               "The data value transmitted exceeds the capacity limit")]


FUZZ_SCRIPTS = {
    # run() itself never fails on any input, so that a 500 could only come from the runtime
    "json": """
        def init():
            pass

        def run(data):
            return {"chars": len(data)}
    """,
    "schema": """
        from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
        from inference_schema.schema_decorators import input_schema

        def init():
            pass

        @input_schema("data", StandardPythonParameterType({"a": [1.0], "b": "text"}))
        def run(data):
            return {"type": type(data).__name__}
    """,
    "rawhttp": """
        from azureml.contrib.services.aml_request import rawhttp
        from azureml.contrib.services.aml_response import AMLResponse

        def init():
            pass

        @rawhttp
        def run(request):
            body = request.get_data()
            parsed = request.get_json(silent=True)
            return AMLResponse({"bytes": len(body), "json": parsed is not None, "method": request.method}, 200,
                               json_str=True)
    """,
}


FUZZ_ROWS = [(f"fuzz-{style}-run", style) for style in FUZZ_SCRIPTS]


def _rows() -> list[tuple[str, str, str, str, str]]:
    rows = []
    test = "test_model_files_come_only_from_inside_the_repo"
    for cid, name, target, message in MODEL_ENTRIES:
        what = {FIFO: f"model/{name} is a named pipe", SOCKET: f"model/{name} is a socket"}.get(
            target, f"model/{name} is a symbolic link to {target}")
        hint = "" if target in (FIFO, SOCKET) else " … hint: remove the link" if "loop" in cid else f" … {MODEL_HINT}"
        rows.append(("repo files", cid, what, f"error: <repo>/model/{name}: {message}{hint}", node(test, cid)))
    test = "test_a_named_pipe_beside_score_py_never_hangs_package"
    for cid, fifo, imports, message in FIFO_CASES:
        what = f"{fifo} is a named pipe (mkfifo){' and score.py imports ' + imports.split()[1] if imports else ''}"
        seen = message if message.startswith("error: ") else f"package finishes; it prints: {message.strip()}"
        rows.append(("score.py", cid, what, seen, node(test, cid)))
    test = "test_an_import_that_never_returns_stops_serve_saying_where"
    for cid, stuck, shown in IMPORT_HANGS:
        rows.append(("serve start-up", cid, f"score.py runs {stuck.splitlines()[0]} at import (serve with "
                                            "MODELFUNC_IMPORT_TIMEOUT=3)",
                     f"exit 1: {IMPORT_HANG_MESSAGE} … score.py, line 4 … {shown.splitlines()[0]}", node(test, cid)))
    for cid, message in INIT_HANGS:
        rows.append(("serve start-up", cid, "init() never returns (wait_ready with a 1 s timeout; 600 s by default)",
                     message + " … score.py, line 5, in init",
                     node("test_an_init_that_never_returns_says_where_it_is", cid)))
    for cid, score, _body, status, message in DEEP_HTTP:
        style = "an @input_schema run()" if score is None else "an undecorated run() that calls json.loads"
        rows.append(("request bodies", cid, f"{{\"data\": [[[…]]]}} nested {DEEP:,} deep as application/json to "
                                            f"{style}", f"HTTP {status}: {message}…",
                     node("test_deeply_nested_json_is_a_400_over_http", cid)))
    for cid, _raw, status, message in DEEP_BLOBS:
        rows.append(("blobs", cid, f"[[[…]]] nested {DEEP:,} deep uploaded as input/….json",
                     f"error record, status {status}: {message}…",
                     node("test_deeply_nested_json_blob_gets_an_error_record", cid)))
    for cid, option, value, message in BAD_REFERENCES:
        rows.append(("CLI arguments", cid, f"modelfunc package {{repo}} {option} {value!r}", f"exit 2: {message}",
                     node("test_an_image_reference_is_one_reference", cid)))
    for cid, when, message in STAGING_CASES:
        what = {"before-the-swap": "an earlier package killed (SIGKILL) while writing its staging folder",
                "between-the-renames": "an earlier package killed (SIGKILL) between moving the old output away and "
                                       "the new one in",
                "alive": "another package writing the same output right now"}[when]
        rows.append(("build output", cid, what, message,
                     node("test_staging_folders_of_a_killed_package_are_removed_by_the_next", cid)))
    for cid, fault, reason in CACHE_FAULTS:
        what = {"empty": "the cached layer's .sha256 file is empty",
                "none": "the cached layer's .sha256 file holds None",
                "tar": "the cached layer's .tar changed after its digest was recorded",
                "missing": "the cached layer's .sha256 file is missing"}[fault]
        rows.append(("dependency cache", cid, what,
                     CACHE_MESSAGE.replace("<reason>", reason),
                     node("test_a_cached_layer_that_does_not_match_its_digest_is_rebuilt", cid)))
    for cid, *expect in NO_SPACE:
        rows.append(("build output", cid, "--out on a 1 MiB tmpfs (the disk fills up while packaging)",
                     "exit 2: " + " … ".join(expect),
                     node("test_a_full_disk_is_a_clear_error_and_leaves_nothing", cid)))
    for cid, which, message in READ_ONLY_CACHES:
        what = "XDG_CACHE_HOME on a read-only file system" if which == "layers" else "--pip-cache on a read-only " \
                                                                                      "file system"
        rows.append(("dependency cache", cid, what, f"package finishes; it prints: {message}…",
                     node("test_a_read_only_cache_costs_only_the_cache", cid)))
    for cid, how, message in OUT_CASES:
        what = {"mount": "--out <tmp>/mnt, a mount point", "dot-in-previous": "--out . run inside an earlier output",
                "dot-in-empty": "--out . run in an empty folder"}[how]
        rows.append(("CLI arguments", cid, what, f"exit 2: {message}…",
                     node("test_out_that_cannot_be_replaced_whole_is_a_clear_error", cid)))
    for cid, content, message in BAD_LOCAL_SETTINGS:
        shown = "a folder" if content is None else repr(content[:40])[2:-1] + ("…" if len(content) > 40 else "")
        rows.append(("local.settings.json", cid, f"modelfunc serve <app> with local.settings.json: {shown}",
                     f"exit 1: error: <app>/local.settings.json{message}",
                     node("test_a_bad_local_settings_json_is_a_clear_error", cid)))
    for cid, score, methods, message in BAD_METHODS:
        style = "@input_schema" if score is None else "undecorated"
        rows.append(("modelfunc.yaml", cid, f"methods: {methods} for an {style} run()", f"exit 2: {message}…",
                     node("test_methods_run_cannot_take_are_refused_at_package_time", cid)))
    for cid, how, message in LISTEN_CASES:
        what = {"ipv6": "modelfunc serve --host ::1", "netns": "modelfunc serve --host ::1 where ::1 is not configured "
                                                               "(a network namespace of its own)",
                "busy": "modelfunc serve --port <a port another program listens on>"}[how]
        rows.append(("CLI arguments", cid, what, f"it serves: {message}" if how == "ipv6" else f"exit 1: {message}",
                     node("test_serve_says_why_it_cannot_listen", cid)))
    for cid, which, client, status, message in LIMIT_CASES:
        setting = f"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT={LIMIT}" if which == "limited" else "the default limit"
        what = {"content-length": f"Content-Length: {LIMIT + 1 if which == 'limited' else 104857601} (with "
                                  f"{setting}), no body yet",
                "chunked": f"a chunked body past FUNCTIONS_REQUEST_BODY_SIZE_LIMIT={LIMIT}",
                "dribble-headers": "request headers sent a byte every 0.25 s (MODELFUNC_REQUEST_HEADERS_TIMEOUT=2)",
                "silent": "a connection that sends nothing (MODELFUNC_REQUEST_HEADERS_TIMEOUT=2)",
                "dribble-body": "a body of 1000 bytes sent a byte a second",
                "big-headers": "100 headers of 1000 bytes each"}[client]
        rows.append(("local host connections", cid, what, f"HTTP {status}, connection closed: {message}…",
                     node("test_the_local_host_bounds_what_one_client_can_take", cid)))
    for cid, carries, status in ADMIN_CASES:
        what = f"GET /admin/host/status {'without a key' if carries == 'none' else 'with a wrong x-functions-key'} " \
               f"from a host serving with --host {ELSEWHERE}"
        rows.append(("admin API", cid, what, f"HTTP {status}: {ADMIN_MESSAGE}…",
                     node("test_the_admin_api_needs_the_master_key_when_bound_elsewhere", cid)))
    for cid, _body, ctype, status, message in FORM_LIMIT:
        rows.append(("request bodies", cid, f"1100 fields as {ctype} to an undecorated run()",
                     f"HTTP {status}: {message}…", node("test_a_form_body_werkzeug_refuses_is_its_status_not_a_crash",
                                                        cid)))
    for cid, style in FUZZ_ROWS:
        rows.append(("request bodies", cid, f"random bodies, content types, methods, queries and triggers to a {style} "
                                            "run() (hypothesis, 5 s)",
                     "never a 5xx nor an exception: 200, or a 4xx with a message",
                     node("test_fuzz_request_bodies_through_the_runtime", cid)))
    return rows


ROWS: list[tuple[str, str, str, str, str]] = _rows()
