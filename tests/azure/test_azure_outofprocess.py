"""`modelfunc deploy` / `destroy` as real child processes against the ARM + Azure AD model served over real HTTPS
(tests/support/armserver.py), reached through ``--arm-endpoint`` as an Azure Stack Hub or private cloud would be.

Nothing is swapped in: the child signs in with azure-identity's EnvironmentCredential (a service principal
in the environment) at the authority the cloud's /metadata/endpoints names, verifies the server's
certificate against a throwaway CA (REQUESTS_CA_BUNDLE), and talks to ARM with the SDK's own pipeline. A dead
proxy for every other host makes any request that would leave 127.0.0.1 fail the deploy.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import requests
from azure.core.pipeline.transport import RequestsTransport
from modelfunc.azure import clouds
from modelfunc.azure.clients import Clients, PipelineSettings
from modelfunc.azure.credentials import get_credential
from modelfunc.errors import OptionError
from support.armserver_fixture import ArmServer
from support.core import ROOT, run_modelfunc, stop_process
from support.secrets_guard import secret

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-1111-2222-3333-000000000000"
CLIENT = "0c1d2e3f-1111-2222-3333-000000000000"
CLIENT_SECRET = secret("sp-client-secret-NEVER-PRINTED-8675309")
IMAGE = "myreg.azurecr.io/diabetes@sha256:" + "a" * 64
RG = f"/subscriptions/{SUB}/resourceGroups/diab-app-rg"
SITE = f"{RG}/providers/Microsoft.Web/sites/diab-app"


pytestmark = pytest.mark.arm(images={IMAGE: ["score_blob"]})  # what `arm_server` (support/plugin.py) lists


def child_env(arm_server: ArmServer) -> dict[str, str]:
    """A service principal, the server's CA, and no way out of 127.0.0.1 (a proxy nobody listens on)."""
    env = {**arm_server.env, "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": CLIENT_SECRET,
           "ACTIONS_ID_TOKEN_REQUEST_URL": "", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "",
           "AZURE_CLIENT_CERTIFICATE_PATH": "", "AZURE_AUTHORITY_HOST": "", "MODELFUNC_CLOUD": "",
           "MODELFUNC_ARM_ENDPOINT": "", "AZURE_SUBSCRIPTION_ID": "",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1,localhost"}
    return env


def deploy_args(repo: Path, arm_server: ArmServer) -> list[str]:
    return ["deploy", str(repo), "--image", IMAGE, "--subscription-id", SUB, "--app-name", "diab-app",
            "--location", "westeurope", "--storage-prefix", "diab", "--no-test", "--arm-endpoint", f"{arm_server.url}/"]


def assert_clean(proc) -> None:  # noqa: ANN001
    assert CLIENT_SECRET not in proc.stdout and CLIENT_SECRET not in proc.stderr


def test_deploy_and_destroy_over_https_against_a_private_cloud(arm_server: ArmServer, example) -> None:  # noqa: ANN001
    repo = example("diabetes-blob")
    env = child_env(arm_server)
    proc = run_modelfunc(*deploy_args(repo, arm_server), env=env, timeout=60)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stderr[-4000:] + "\n--- server\n" + arm_server.output()[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("https://diab-app.")

    # Signed in as the service principal at the cloud's own authority (client credentials; the secret was
    # sent in the form, which the server records by name only).
    recorded = arm_server.requests()
    token_posts = [r for r in recorded if r["method"] == "POST" and r["path"].endswith("/oauth2/v2.0/token")]
    assert token_posts, [(r["method"], r["path"]) for r in recorded]
    for post in token_posts:
        assert post["path"] == f"/{TENANT}/oauth2/v2.0/token"
        assert post["body"]["grant_type"] == ["client_credentials"] and post["body"]["client_id"] == [CLIENT]
        assert "client_secret" in post["body"] and "client_assertion" not in post["body"]
    # The ARM clients asked for a token for the cloud's audience (from /metadata/endpoints). (The deploy's
    # sign-in check may still ask for the public ARM scope: the model answers any scope.)
    scopes = {post["body"]["scope"][0] for post in token_posts}
    assert f"{arm_server.url}//.default" in " ".join(scopes), scopes

    # Every request reached 127.0.0.1 over TLS, addressed to this server; every ARM call carried a bearer token.
    assert all(r["peer"] == "127.0.0.1" and (r["tls"] or "").startswith("TLS") for r in recorded), recorded[:3]
    assert {r["host_header"] for r in recorded} == {f"127.0.0.1:{arm_server.port}"}
    arm = [r for r in recorded if r["host"] == "management.azure.com"]
    assert arm and all(r["authorization_scheme"] == "Bearer" for r in arm)
    assert any(r["mutating"] for r in arm)

    # The end state (generic: which requests made it is the deploy tests' business).
    store = arm_server.store()
    kinds = [v.get("type") for k, v in store.items() if k.startswith(RG.lower() + "/")]
    assert store.get(RG.lower()) is not None
    assert "microsoft.web/serverfarms" in kinds and "microsoft.storage/storageaccounts" in kinds
    assert store.get(SITE.lower()) is not None and store.get(f"{SITE}/slots/staging".lower()) is not None
    production = store.get(f"{SITE}/config/web".lower()) or {}
    assert production.get("properties", {}).get("linuxFxVersion", "").endswith(IMAGE)  # swapped in

    # The same deploy again changes nothing.
    arm_server.reset()
    again = run_modelfunc(*deploy_args(repo, arm_server), env=env, timeout=60)
    assert_clean(again)
    assert again.returncode == 0, again.stderr[-4000:]
    second = arm_server.requests()
    assert [r for r in second if r["host"] == "management.azure.com"], "the second deploy must still read the state"
    assert [(r["method"], r["path"]) for r in second if r["mutating"]] == []

    # destroy removes the resource group, through the same cloud.
    gone = run_modelfunc("destroy", "--app-name", "diab-app", "--subscription-id", SUB, "--arm-endpoint",
                         arm_server.url, env=env, timeout=60)
    assert_clean(gone)
    assert gone.returncode == 0, gone.stderr[-4000:]
    assert arm_server.get(RG) is None and arm_server.get(SITE) is None


def test_arm_endpoint_and_a_named_cloud_are_exclusive(example) -> None:  # noqa: ANN001
    proc = run_modelfunc("destroy", "--app-name", "diab-app", "--subscription-id", SUB, "--cloud", "AzureChinaCloud",
                         "--arm-endpoint", "https://127.0.0.1:1/", env={"AZURE_CLIENT_ID": ""})
    assert proc.returncode == 2 and "arm-endpoint: cannot be combined with --cloud AzureChinaCloud" in proc.stderr
    from modelfunc.cli import azure_verbs as cli

    assert cli._CLOUD_NAMES == clouds.NAMES  # the CLI's copy (its --help imports no Azure SDK)


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("http://127.0.0.1:1/", "is not an https:// URL"),
    ("not a url", "is not an https:// URL"),
    ("https://127.0.0.1:1/", "could not be read"),  # nothing listens there (refused at once)
])
def test_a_bad_arm_endpoint_is_an_option_error(endpoint: str, expected: str) -> None:
    clouds.clear_cache()
    with pytest.raises(OptionError) as e:
        clouds.resolve(arm_endpoint=endpoint)
    assert e.value.field == "arm-endpoint" and expected in e.value.message and "metadata/endpoints" in e.value.hint


def canned(content: bytes) -> RequestsTransport:
    """A transport whose every answer is ``content`` (200, JSON)."""

    class Adapter(requests.adapters.BaseAdapter):
        def send(self, request, **kwargs):  # noqa: ANN001, ANN003, ANN202
            response = requests.Response()
            response.status_code, response._content, response.url = 200, content, request.url
            response.headers["Content-Type"] = "application/json"
            response.raw, response.request = io.BytesIO(content), request
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("https://", Adapter())
    return RequestsTransport(session=session)


def test_metadata_without_the_needed_fields_names_them(arm_server: ArmServer, monkeypatch: pytest.MonkeyPatch) -> None:
    clouds.clear_cache()
    for name, value in arm_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    cloud = clouds.resolve(arm_endpoint=arm_server.url)  # TLS verified against the CA in REQUESTS_CA_BUNDLE
    assert cloud.arm_endpoint == f"{arm_server.url}/" and cloud.authority_host == arm_server.url
    assert cloud.arm_scope == f"{arm_server.url}//.default" and not cloud.known
    assert (cloud.storage_suffix, cloud.acr_suffix) == ("core.windows.net", "azurecr.io")
    assert clouds.resolve(arm_endpoint=f"{arm_server.url}/") is cloud  # cached per endpoint

    clouds.clear_cache()
    with pytest.raises(OptionError) as e:
        clouds.resolve(arm_endpoint=arm_server.url, transport=canned(
            b'{"name": "x", "resourceManager": "", "authentication": {"audiences": []}, "suffixes": {}}'))
    message = e.value.message
    assert e.value.field == "arm-endpoint"
    for field in ("authentication.loginEndpoint", "authentication.audiences", "suffixes.storage",
                  "suffixes.acrLoginServer"):
        assert field in message


def base_url(client: object) -> str:
    config = client._config  # type: ignore[attr-defined]
    return getattr(config, "base_url", None) or client._client._base_url  # type: ignore[attr-defined]


def test_the_cloud_goes_to_every_client_and_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = clouds.Cloud("Stack", "https://arm.example.test/", "https://login.example.test", "https://arm.example.test/"
                         "/.default", "example.test", "cr.example.test")
    clients = Clients(object(), SUB, PipelineSettings(cloud=stack))  # type: ignore[arg-type]
    for client in (clients.resource, clients.storage, clients.web, clients.authorization(), clients.registry(),
                   clients.eventgrid):
        assert base_url(client) == "https://arm.example.test/", type(client)
        assert client._config.credential_scopes == ["https://arm.example.test//.default"], type(client)
    assert clients.cloud is stack and clouds.suffixes_for(PipelineSettings()).name == "AzureCloud"
    default = Clients(object(), SUB, PipelineSettings())  # type: ignore[arg-type]
    assert base_url(default.web).rstrip("/") == default.cloud.arm_endpoint.rstrip("/")  # the SDK's own default
    assert default.web._config.credential_scopes == [default.cloud.arm_scope]

    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.setenv(name, "x" if name != "AZURE_TENANT_ID" else TENANT)
    credential = get_credential(env=dict(os.environ), cloud=stack)
    inner = credential._credential  # EnvironmentCredential -> ClientSecretCredential
    assert inner._authority == "https://login.example.test" and inner._instance_discovery is False


def test_a_named_cloud_takes_its_entry_from_the_list_arm_answers() -> None:
    """The named clouds' ARM endpoints answer a list of every cloud: the entry of that name is taken; the
    ARM endpoint and the sign-in host are the libraries' own (not typed in modelfunc)."""
    from azure.core import AzureClouds
    from azure.identity import AzureAuthorityHosts
    from azure.mgmt.core.tools import get_arm_endpoints

    china_arm = get_arm_endpoints(AzureClouds.AZURE_CHINA_CLOUD)["resource_manager"]
    entries = [{"name": "Other", "resourceManager": "https://arm.other.test/",
                "authentication": {"loginEndpoint": "https://login.other.test/", "audiences": ["https://o.test/"]},
                "suffixes": {"storage": "other.test", "acrLoginServer": "cr.other.test"}},
               {"name": "AzureChinaCloud", "resourceManager": china_arm,
                "authentication": {"loginEndpoint": "https://login.china.test/", "audiences": ["https://aud.test/"]},
                "suffixes": {"storage": "storage.china.test", "acrLoginServer": "cr.china.test"}}]
    clouds.clear_cache()
    cloud = clouds.for_options("AzureChinaCloud", None, transport=canned(json.dumps(entries).encode()))
    assert cloud is not None and cloud.name == "AzureChinaCloud" and cloud.known
    assert cloud.arm_endpoint == china_arm and cloud.authority_host == AzureAuthorityHosts.AZURE_CHINA
    assert (cloud.arm_scope, cloud.storage_suffix, cloud.acr_suffix) == (
        "https://aud.test//.default", "storage.china.test", "cr.china.test")
    assert clouds.for_options("AzureCloud", "") is None  # the public cloud: the SDK's defaults, no look-up
    with pytest.raises(OptionError) as e:
        clouds.for_options("AzureUSGovernment", "https://127.0.0.1:1/")
    assert e.value.field == "arm-endpoint"
    clouds.clear_cache()


def test_the_rehearsal_runs_every_step_for_a_trigger(tmp_path: Path) -> None:
    """`make azure-rehearsal` (dev/azure_rehearsal.py), one trigger, both plans: every step does what it should,
    and nothing left 127.0.0.1 (Flex's Kudu host is reached through the fake's CONNECT proxy, TLS verified).

    The plans share nothing (each its own fake, repo copy and app): the script runs once per plan (``--plan``),
    both at once, and each run's isolation check, steps and summary are checked."""
    import subprocess
    import sys

    runs = {}
    for plan in ("premium-container", "flex"):
        out = tmp_path / f"rehearsal-{plan}.json"
        runs[plan] = (out, subprocess.Popen(
            [sys.executable, str(ROOT / "dev" / "azure_rehearsal.py"), "--trigger", "http", "--plan", plan, "--json",
             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL))
    printed, results = {}, []
    try:
        for plan, (out, proc) in runs.items():
            stdout, stderr = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"{plan}:\n{stdout[-4000:]}{stderr[-2000:]}"
            printed[plan] = stdout
            data = json.loads(out.read_text())
            assert data["isolation"]["ok"], (plan, data["isolation"])
            results += data["steps"]
    finally:
        for _out, proc in runs.values():
            stop_process(proc)
    premium = [r for r in results if r["plan"] == "premium-container"]
    flex = [r for r in results if r["plan"] == "flex"]
    assert [r["step"] for r in premium] == ["first deploy", "redeploy, nothing changed", "redeploy, new image",
                                            "failed deploy (image lists no function)", "destroy"]
    assert [r["step"] for r in flex] == ["first deploy", "redeploy, nothing changed",
                                         "redeploy, changed package (score.py)",
                                         "failed deploy (Kudu: OneDeploy Failed)", "destroy"]
    assert all(r["ok"] for r in results)
    assert premium[1]["writes"] == [] and premium[3]["exit"] == 1
    kudu = "POST rehearse-flex-http.scm.azurewebsites.net/api/publish"
    assert kudu in flex[0]["writes"] and flex[1]["writes"] == [] and flex[1]["kudu_requests"] == 0
    assert flex[2]["state"]["package"] != flex[1]["state"]["package"] and kudu in flex[2]["writes"]
    assert flex[3]["exit"] == 1 and flex[3]["state"]["package"] == flex[2]["state"]["package"]
    assert all(not r["isolation"]["refused"] and not r["isolation"]["foreign"] for r in results)
    assert [r["isolation"]["tunnels"] > 0 for r in flex] == [True, False, True, True, False]
    assert all("5 passed, 0 failed" in printed[plan] for plan in runs), printed  # each plan's five steps
