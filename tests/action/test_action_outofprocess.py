"""GitHub OIDC sign-in end to end, out of process, against the ARM + Azure AD model over real HTTPS
(tests/support/armserver.py, reached through ``--arm-endpoint`` / the action's ``arm-endpoint`` input).

Nothing is swapped in: a local ID-token server (tests/support/idtoken_server.py) is ``ACTIONS_ID_TOKEN_REQUEST_URL``,
as GitHub's runner sets it for a job with ``permissions: id-token: write``; the child processes sign in with
azure-identity's real ClientAssertionCredential (the ID token for ``api://AzureADTokenExchange`` is the client
assertion of the token request to the fake's ``/<tenant>/oauth2/v2.0/token``), verify the server's certificate
against a throwaway CA and talk to ARM with the SDK's own pipeline. No client secret is in any environment.

* ``modelfunc deploy`` then ``destroy`` as child processes;
* the action's Azure steps as action.yml runs them (tests/support/act_harness.py: its expressions, ``if:`` conditions,
  env and step outputs): deploy (scripts/deploy.py) → the test step, skipped by ``run-blob-test: false`` (the
  slot is not served by the fake) → swap (scripts/swap.py), each a bash step starting its script. Only the
  steps that cannot run here are stood in for with pytest-subprocess: installing modelfunc (the venv's python
  is the one running the tests) and the package step (it needs Docker and a registry: it answers the image).

Every other host goes to the fake's CONNECT proxy, which refuses and records it: nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from modelfunc.action.signin import AUDIENCE
from support.act_harness import ActionRun, ActionRunner, fake_install
from support.armserver_fixture import ArmServer
from support.azurefake import BLOBS_KEY, STORAGE_KEY, TOKEN
from support.core import ROOT, copy_example
from support.idtoken_server import ID_TOKEN, REQUEST_TOKEN, IdTokenServer

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-3333-2222-1111-000000000000"
CLIENT = "0c1d2e3f-3333-2222-1111-000000000000"
IMAGE = "myreg.azurecr.io/diabetes-http@sha256:" + "d" * 64
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# What must never be printed, written to an output or a summary: GitHub's two tokens, the access token the fake
# issues (and the secret claim inside it), the keys the fake's listKeys calls answer.
SECRETS = {"the request token": REQUEST_TOKEN, "the ID token": ID_TOKEN, "the access token": TOKEN,
           "the access token's secret claim": "tok-SECRET-4711", "a storage key": STORAGE_KEY,
           "the blobs extension key": BLOBS_KEY, "the master key": "master-SECRET", "a function key": "fnkey-SECRET"}
# Variables of the test process a child must not inherit: another credential, another cloud, a proxy, a job's.
_NOT_INHERITED = ("AZURE_", "ACTIONS_", "MSI_", "IDENTITY_", "IMDS_", "INPUT_", "GITHUB_", "MODELFUNC_", "RUNNER_")
_PROXIES = {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"}


pytestmark = pytest.mark.arm(images={IMAGE: ["score"]})  # what `arm_server` (support/plugin.py) lists


def isolated(arm_server: ArmServer, id_server: IdTokenServer) -> dict[str, str]:
    """This machine's environment without any credential, cloud or proxy setting, plus: the job's OIDC request
    variables, the fake's CA, and its CONNECT proxy for every host but 127.0.0.1 (it refuses and records)."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(_NOT_INHERITED) and k.upper() not in _PROXIES}
    return {**env, **arm_server.env, **arm_server.proxy_env(), **id_server.env()}


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def token_posts(recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recorded if r["method"] == "POST" and r["path"].endswith("/oauth2/v2.0/token")]


def assert_signed_in_with_the_oidc_assertion(recorded: list[dict[str, Any]], id_server: IdTokenServer) -> None:
    """Every Azure AD token request was the client-credentials grant of CLIENT in TENANT with a client assertion
    (its value is recorded as redacted), never a secret; each assertion was an ID token GitHub's service issued
    for Azure's audience, asked with the job's request token."""
    posts = token_posts(recorded)
    assert posts, [(r["method"], r["path"]) for r in recorded]
    for post in posts:
        body = post["body"]
        assert post["path"] == f"/{TENANT}/oauth2/v2.0/token" and post["host"] == "login.microsoftonline.com"
        assert body["grant_type"] == ["client_credentials"] and body["client_id"] == [CLIENT]
        assert body["client_assertion_type"] == [JWT_BEARER]
        assert body["client_assertion"] == ["<redacted>"]  # present; a secret, so recorded by name only
        assert "client_secret" not in body and "client_certificate" not in body
    assert id_server.requests, "no ID token was requested"
    for request in id_server.requests:
        assert request["query"]["audience"] == [AUDIENCE] == ["api://AzureADTokenExchange"]
        assert request["query"]["api-version"] == ["2.0"]  # the URL's own query kept
        assert request["authorization"] == f"bearer {REQUEST_TOKEN}" and request["peer"] == "127.0.0.1"
    # azure-identity asks for a fresh assertion for each token request: one ID token each.
    assert len(id_server.requests) == len(posts)


def assert_stayed_on_loopback(arm_server: ArmServer, recorded: list[dict[str, Any]]) -> None:
    """Every request reached this server on 127.0.0.1 over TLS, addressed to it by IP; the proxy was never
    asked for anything (a request for any other host would be refused there, and recorded)."""
    assert recorded
    assert all(r["peer"] == "127.0.0.1" and (r["tls"] or "").startswith("TLSv1.") for r in recorded), recorded[:3]
    assert {r["host_header"] for r in recorded} == {f"127.0.0.1:{arm_server.port}"}
    assert arm_server.proxy() == {"tunnels": [], "refused": []}
    arm = [r for r in recorded if r["host"] == "management.azure.com"]
    assert arm and all(r["authorization_scheme"] == "Bearer" for r in arm)


# ------------------------------------------------------------------------ modelfunc deploy / destroy


RG = f"/subscriptions/{SUB}/resourceGroups/oidc-app-rg"
SITE = f"{RG}/providers/Microsoft.Web/sites/oidc-app"


def modelfunc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelfunc", *args], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_deploy_and_destroy_sign_in_with_the_github_oidc_token(arm_server: ArmServer, id_server: IdTokenServer,
                                                               example) -> None:  # noqa: ANN001
    repo = example("diabetes-http")
    env = {**isolated(arm_server, id_server), "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT}
    assert not {"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE"} & set(env)

    proc = modelfunc("deploy", str(repo), "--image", IMAGE, "--subscription-id", SUB, "--app-name", "oidc-app",
                     "--location", "westeurope", "--storage-prefix", "oidc", "--no-test",
                     "--arm-endpoint", f"{arm_server.url}/", env=env)
    assert not leaks(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-4000:] + "\n--- server\n" + arm_server.output()[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("https://oidc-app.")
    recorded = arm_server.requests()
    assert_signed_in_with_the_oidc_assertion(recorded, id_server)
    assert f"{arm_server.url}//.default" in " ".join(p["body"]["scope"][0] for p in token_posts(recorded))
    assert_stayed_on_loopback(arm_server, recorded)
    assert any(r["mutating"] for r in recorded)

    # The end state: the app, its slot, and production running the image (--no-test: deployed and swapped).
    store = arm_server.store()
    assert store.get(RG.lower()) is not None and store.get(f"{SITE}/slots/staging".lower()) is not None
    kinds = {v.get("type") for k, v in store.items() if k.startswith(RG.lower() + "/")}
    assert {"microsoft.web/serverfarms", "microsoft.web/sites", "microsoft.storage/storageaccounts"} <= kinds
    production = store[f"{SITE}/config/web".lower()]["properties"]
    assert production["linuxFxVersion"] == f"DOCKER|{IMAGE}"

    # destroy, signed in the same way (its own ID token), removes it all.
    arm_server.reset()
    id_server.requests.clear()
    gone = modelfunc("destroy", "--app-name", "oidc-app", "--subscription-id", SUB, "--arm-endpoint", arm_server.url,
                     env=env)
    assert not leaks(gone.stdout + gone.stderr)
    assert gone.returncode == 0, gone.stderr[-4000:] + "\n--- server\n" + arm_server.output()[-3000:]
    recorded = arm_server.requests()
    assert_signed_in_with_the_oidc_assertion(recorded, id_server)
    assert_stayed_on_loopback(arm_server, recorded)
    deletes = [(r["method"], r["path"].lower()) for r in recorded if r["mutating"]]
    assert deletes[-1] == ("DELETE", RG.lower()) and {method for method, _ in deletes} == {"DELETE"}
    store = arm_server.store()
    assert arm_server.get(RG) is None and not [k for k in store if k.startswith(RG.lower())]


# ------------------------------------------------------------- the action's Azure steps, as action.yml runs them


def fake_package(process) -> int:  # noqa: ANN001
    """What the package step answers once the image is pushed (scripts/package.py's outputs)."""
    with open(process.kwargs["env"]["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
        f.write(f"image={IMAGE}\ndigest={IMAGE.split('@')[1]}\n")
    return 0


def runner_env(arm_server: ArmServer, id_server: IdTokenServer) -> dict[str, str]:
    """A runner's environment for a job with `id-token: write`, on this machine, kept to 127.0.0.1."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    return {**{k: v for k, v in os.environ.items() if k in keep}, **arm_server.env, **arm_server.proxy_env(),
            **id_server.env()}


def test_the_actions_azure_steps_deploy_and_swap_with_oidc(arm_server: ArmServer, id_server: IdTokenServer,
                                                           tmp_path: Path, fp) -> None:  # noqa: ANN001
    workspace, temp = tmp_path / "workspace", tmp_path / "runner-temp"
    workspace.mkdir()
    copy_example("diabetes-http", workspace).rename(workspace / "model")
    runner = ActionRunner(ROOT, workspace, temp, env=runner_env(arm_server, id_server), step_timeout=120)
    fp.allow_unregistered(True)
    fp.register(runner.command("install"), callback=fake_install)
    fp.register(runner.command("package"), callback=fake_package)
    for step_id in ("pip-key", "deploy", "test", "swap"):
        fp.pass_command(runner.command(step_id))  # real: bash, then the step's script

    run: ActionRun = runner.run({
        "target": "azure", "model-repo": "model", "subscription-id": SUB, "tenant-id": TENANT,
        "client-id": CLIENT, "app-name": "oidc-action", "location": "westeurope", "storage-prefix": "oidcact",
        "registry": "myreg", "arm-endpoint": f"{arm_server.url}/", "run-blob-test": "false", "deploy-timeout": "60"})
    log = "\n".join(run.log.raw)
    assert run.conclusion == "success", log[-6000:] + "\n--- server\n" + arm_server.output()[-3000:]

    # The steps, in action.yml's order: the test step skipped by run-blob-test: false, the swap after it.
    ran = [s.id for s in run.steps if s.outcome != "skipped"]
    assert ran == ["python", "pip-key", "pip-cache", "install", "package", "deploy", "swap"]
    assert run.step("test").outcome == "skipped" and run.step("up").outcome == "skipped"
    assert list(fp.calls) == [runner.command(s) for s in ("pip-key", "install", "package", "deploy", "swap")]
    assert all(run.step(s).returncode == 0 for s in ran if run.step(s).uses is None)  # each run step exited 0
    deploy, swap = run.step("deploy"), run.step("swap")
    for step, script in ((deploy, "deploy.py"), (swap, "swap.py")):  # bash starts the script, which ran
        assert step.script == f'"$RUNNER_TEMP/modelfunc-venv/bin/python" "$ACTION_PATH/scripts/{script}"'
        assert step.env["ACTION_PATH"] == str(ROOT) and step.env["RUNNER_TEMP"] == str(temp)
    for step in (deploy, swap):  # signed in with OIDC as the inputs say, to the cloud the inputs name
        assert step.env["INPUT_TENANT_ID"] == TENANT and step.env["INPUT_CLIENT_ID"] == CLIENT
        assert step.env["INPUT_ARM_ENDPOINT"] == f"{arm_server.url}/" and step.env["INPUT_CLOUD"] == "AzureCloud"
        assert step.env["ACTIONS_ID_TOKEN_REQUEST_URL"] == id_server.url and step.env["GITHUB_ACTIONS"] == "true"
        assert not [k for k in step.env if k.startswith("AZURE_")]  # no secret, and not even the ids
    assert deploy.env["INPUT_IMAGE"] == IMAGE  # the package step's output, by digest

    # deploy handed the deployment to swap through its step output; swap swapped exactly that one.
    out = deploy.outputs
    assert out["changed"] == "true" and out["state"] == "Healthy"
    assert swap.env["INPUT_DEPLOYMENT"] == out["deployment"]
    handed = json.loads(Path(out["deployment"]).read_text(encoding="utf-8"))
    assert Path(out["deployment"]).parent == temp
    assert (handed["subscription_id"], handed["app_name"], handed["slot"], handed["image"]) == (
        SUB, "oidc-action", "staging", IMAGE)
    site = f"/subscriptions/{SUB}/resourceGroups/{handed['resource_group']}/providers/Microsoft.Web/sites/oidc-action"
    recorded = arm_server.requests()
    swaps = [r for r in recorded if r["method"] == "POST" and r["path"].lower().endswith("/slotsswap")]
    assert [(r["path"].lower(), r["body"]) for r in swaps] == [
        (f"{site}/slotsswap".lower(), {"targetSlot": "staging", "preserveVnet": True})]
    assert swap.outputs == {"app-url": out["app-url"], "swapped": "true"}
    assert out["app-url"].startswith("https://oidc-action.") and out["slot-url"].startswith("https://oidc-action-")

    # Production runs the image now; the slot got what production ran before.
    production = arm_server.get(f"{site}/config/web")
    slot = arm_server.get(f"{site}/slots/staging/config/web")
    assert production is not None and slot is not None
    assert production["properties"]["linuxFxVersion"] == f"DOCKER|{IMAGE}"
    assert slot["properties"]["linuxFxVersion"] != f"DOCKER|{IMAGE}"
    assert run.outputs == {"image": IMAGE, "app-url": out["app-url"], "slot-url": out["slot-url"],
                           "test-result": "skipped", "report-path": "", "golden": ""}

    # Every sign-in (deploy's and swap's own) was the OIDC assertion; nothing left 127.0.0.1.
    assert_signed_in_with_the_oidc_assertion(recorded, id_server)
    assert len(id_server.requests) >= 2  # deploy and swap each asked GitHub for their own ID token
    assert_stayed_on_loopback(arm_server, recorded)

    # No secret in the step summary, any step output, the hand-off, or the log (even unmasked): nor the app's
    # generated machine key (a secret app setting the deploy created, shown masked in its plan).
    assert "### modelfunc deploy" in run.summary and "swapped into production" in run.summary
    settings = (arm_server.get(f"{site}/config/appsettings") or {}).get("properties", {})
    machine_key = settings.get("MACHINEKEY_DecryptionKey", "")
    assert len(machine_key) >= 16 and "MACHINEKEY_DecryptionKey = ***" in run.summary
    outputs = "\n".join(v for s in run.steps for v in s.outputs.values())
    for where, text in (("summary", run.summary), ("outputs", outputs), ("log", log),
                        ("hand-off", json.dumps(handed)), ("action outputs", json.dumps(run.outputs))):
        assert not leaks(text) and machine_key not in text, where
    assert run.log.annotations == []
