"""Issue 13, the local host: the cases host/test_hardening_host.py runs and the rows of docs/bad-inputs.md made from
them."""

from __future__ import annotations

# The forms a SAS token reaches text in (id, what, how: the source of a function of the SAS and its signature),
# each a case of the redactor and of the secrets guard.
SAS_FORMS = [
    ("raw", "the SAS as given", "lambda sas, sig: sas"),
    ("re-ordered", "the SAS re-ordered, as the storage SDK prints an endpoint's query",
     "lambda sas, sig: '&'.join(reversed(sas.split('&')))"),
    ("url-encoded", "the endpoint URL with its SAS, URL-encoded (as a log of a URL prints it)",
     "lambda sas, sig: quote('http://127.0.0.1:1/devstoreaccount1/?' + sas, safe='')"),
    ("json-escaped", "the SAS decoded inside JSON that escapes / and + (as \\\\/ and \\\\u002B, as .NET and PHP "
     "encoders do)", "lambda sas, sig: json.dumps({'url': 'http://h/?' + unquote(sas)})"
     ".replace('/', '\\\\/').replace('+', '\\\\u002B')"),
    ("signature-alone", "the signature alone, decoded", "lambda sas, sig: 'signature ' + sig"),
]


# (id, what is wrong, what the user sees): the SAS through the real commands.
SAS_PRINTED = [
    ("blob-test-pass-report", "a SAS connection string: blob-test PASS, its report and --report JSON",
     "the account and endpoint without the SAS (devstoreaccount1 at http://127.0.0.1:…/devstoreaccount1/)"),
    ("blob-test-storage-error", "a SAS connection string to a storage account that does not answer",
     "error: storage account devstoreaccount1 at http://127.0.0.1:9/devstoreaccount1/ failed: … (no SAS)"),
    ("up-step-log", "the action's up step with a SAS connection string (the SDK prints it re-ordered, URL-encoded)",
     "the log, summary, outputs and report without the SAS in any form; the masks cover each form"),
]


# (id, what is wrong, what the user sees)
DOT_DOT = [
    ("invoke-into-another-container", "POST /admin/functions/score_blob {\"input\": \"in-…/../victim-…/x.json\"} "
     "with a SAS connection", "HTTP 400: the blob name '../victim-…/x.json' has a '..' path segment, which would lead "
     "out of its container …; nothing is read from or written to the other container"),
    ("invoke-encoded-dot-dot", "POST /admin/functions/score_blob {\"input\": \"in-…/%2e%2e/victim-…/x.json\"}",
     "HTTP 400: … has a '..' path segment …"),
    ("output-path-leaves-container", "modelfunc.yaml: output_path: output/../in-…/{blobname}_out.json (would trigger "
     "the function again, for ever)", "exit 2: trigger.output_path: 'output/../in-…/{blobname}_out.json' has a '..' "
     "path segment, which would lead out of container 'output' …"),
    ("app-output-binding-leaves-container", "function_app.py edited: an output binding path with '..'",
     "modelfunc serve exits 1: function score_blob: the path of output binding 'output' is invalid: … has a '..' "
     "path segment …"),
    ("blob-named-with-dot-dot", "a blob uploaded under the name 'a/../b.json' (its dots percent-encoded)",
     "logged once: left in-…/'a/../b.json' alone (never read): … '..' path segment …; status rejected 1; never "
     "read or retried"),
]


# (id, what is wrong, what the user sees)
RUN_ENDS = [
    ("sys-exit", "run() calls sys.exit(3) on a blob", "each try logged (attempt 1 of 5 … SystemExit: 3); after 5 "
     "tries: gave up on in-…/boom.json after 5 attempt(s) …; moved to the poison queue webjobs-blobtrigger-poison; "
     "status failed 5, retried 4, poisoned 1"),
    ("keyboard-interrupt", "run() raises KeyboardInterrupt on a blob", "each try logged (… KeyboardInterrupt); after "
     "5 tries: moved to the poison queue webjobs-blobtrigger-poison; status failed 5, poisoned 1"),
]


RUN_KILLS = [
    ("os-exit", "run() calls os._exit(7) on a blob: every serve on that account dies at start",
     "the host dies 3 times (host.json poisonBlobThreshold 3; each try recorded before run()), then starts: gave up "
     "on in-…/boom.json after 3 attempt(s): the host stopped during each of them …; moved to the poison queue"),
    ("segfault", "run() segfaults on a blob", "as os-exit: the 4th start poisons it without running it"),
]


RECEIPTS = [
    ("receipts-container-deleted", "the receipts container azure-webjobs-hosts deleted while the host serves",
     "logged: the receipts container azure-webjobs-hosts is gone; creating it again; each new blob scored once"),
    ("two-apps-default-build-folder", "two apps packaged to their default build/ folders on one storage account",
     "each app scores the blob: receipts under blobreceipts/<machine>-<hash of the app's folder>/ (as func start)"),
    ("two-slots-of-one-app", "one app run as its production and its staging slot (WEBSITE_SITE_NAME, "
     "WEBSITE_SLOT_NAME) on one account", "each slot scores the blob: receipts under blobreceipts/<app>/ and "
     "blobreceipts/<app>-staging/"),
]


SIGNALS = [
    ("SIGTERM", "SIGTERM to `modelfunc up` while it tests the sample (its local host and Azurite running)",
     "exit 1 (Aborted!); the local host and Azurite are stopped: no process is left"),
    ("SIGHUP", "SIGHUP to `modelfunc up` (its terminal closed)", "as SIGTERM: no process is left"),
    ("SIGINT", "SIGINT to `modelfunc up` alone (not its process group)", "as SIGTERM: no process is left"),
    ("SIGKILL", "SIGKILL to `modelfunc up` (no handler runs)", "up is gone at once; its local host and Azurite, tied "
     "to it (PR_SET_PDEATHSIG), stop with it: no process is left"),
]


ADMIN = [
    ("invoke-missing-blob", "POST /admin/functions/score_blob {\"input\": \"in-…/nope.json\"}: no such blob",
     "HTTP 404: blob in-…/nope.json does not exist in the trigger's storage account"),
]


FILE = 'test_hardening_host.py'


def _rows() -> list[tuple[str, str, str, str, str]]:
    rows = []
    for cid, what, _ in SAS_FORMS:
        rows.append(("secrets", f"redact-sas-{cid}", f"a SAS token printed as {what}",
                     "*** in its place (by key: sig=***; by value: the signature)",
                     f"{FILE}::test_the_redactor_removes_the_sas_in_every_printed_form[{cid}]"))
        rows.append(("secrets", f"guard-sas-{cid}", f"a test that prints {what}",
                     "the secrets guard fails the test: a secret reached an output (the secret is never printed)",
                     f"{FILE}::test_the_secrets_guard_catches_the_sas_in_every_printed_form[{cid}]"))
    rows += [("secrets", cid, what, sees, f"{FILE}::test_a_sas_is_printed_nowhere[{cid}]")
             for cid, what, sees in SAS_PRINTED]
    rows += [("blob paths", cid, what, sees, f"{FILE}::test_no_blob_path_leaves_its_container[{cid}]")
             for cid, what, sees in DOT_DOT]
    rows.append(("blob paths", "fuzz-names-and-patterns", "random blob names and path patterns (unicode, '..', "
                 "'%2e%2e', '\\', 1,024+ characters, 254+ segments)", "BlobPathError with the reason, never another "
                 "exception or a path outside the container; the examples tried and the time are printed",
                 f"{FILE}::test_random_blob_names_and_patterns_never_leave_the_container"))
    rows += [("poison blobs", cid, what, sees,
              f"{FILE}::test_a_run_that_exits_is_tried_five_times_then_poisoned[{cid}]")
             for cid, what, sees in RUN_ENDS]
    rows += [("poison blobs", cid, what, sees,
              f"{FILE}::test_a_run_that_kills_the_host_is_poisoned_after_the_restarts_it_cost[{cid}]")
             for cid, what, sees in RUN_KILLS]
    rows += [("blob receipts", cid, what, sees,
              f"{FILE}::test_blob_receipts_are_kept_per_app_and_survive_their_container[{cid}]")
             for cid, what, sees in RECEIPTS]
    rows += [("signals", f"up-{cid.lower()}", what, sees,
              f"{FILE}::test_a_signal_to_up_leaves_no_process_behind[{cid}]") for cid, what, sees in SIGNALS]
    rows += [("admin API", cid, what, sees,
              f"{FILE}::test_admin_invoke_of_a_missing_blob_is_a_404_naming_it[{cid}]") for cid, what, sees in ADMIN]
    return rows


ROWS: list[tuple[str, str, str, str, str]] = _rows()
