"""Signing in: GitHub OIDC (the action wing's sign-in, modelfunc.action.signin) through a real local ID-token
server and the real azure-identity ClientAssertionCredential (its Azure AD token request answered by the in-test
transport), the core's choice of credential, and the clear error when no credential works."""

from __future__ import annotations

import pytest
from azure.identity import ClientAssertionCredential, DefaultAzureCredential, EnvironmentCredential
from modelfunc.action.signin import AUDIENCE, github_id_token
from modelfunc.action.signin import credential as action_credential
from modelfunc.azure import DeployOptions, PipelineSettings, plan
from modelfunc.azure.credentials import SETUP_HINT, check, get_credential
from modelfunc.config import load_project
from modelfunc.errors import CredentialError
from support.azurefake import SUB, TOKEN, FakeArm
from support.idtoken_server import ID_TOKEN, REQUEST_TOKEN, IdTokenServer

TENANT = "72f988bf-0000-0000-0000-000000000000"
CLIENT = "0c1d2e3f-0000-0000-0000-000000000000"


def actions_env(server: IdTokenServer, **extra: str) -> dict[str, str]:
    return {"ACTIONS_ID_TOKEN_REQUEST_URL": server.url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
            "GITHUB_ACTIONS": "true", **extra}


def test_github_oidc_assertion_reaches_the_azure_ad_token_request(id_server: IdTokenServer, example) -> None:  # noqa: ANN001
    arm = FakeArm()
    credential = action_credential(TENANT, CLIENT, env=actions_env(id_server), transport=arm.transport(),
                                   disable_instance_discovery=True)
    assert isinstance(credential, ClientAssertionCredential)
    principal = check(credential)
    # The ID token was requested for Azure's audience, with the job's request token, keeping the URL's query.
    assert len(id_server.requests) == 1
    request = id_server.requests[0]
    assert request["query"]["audience"] == [AUDIENCE] == ["api://AzureADTokenExchange"]
    assert request["query"]["api-version"] == ["2.0"]
    assert request["authorization"] == f"bearer {REQUEST_TOKEN}"
    # ... and became the client assertion of the Azure AD token request for this tenant and client.
    token_posts = [r for r in arm.requests if r.host == "login.microsoftonline.com" and r.method == "POST"]
    assert len(token_posts) == 1 and token_posts[0].path == f"/{TENANT}/oauth2/v2.0/token"
    form = arm.aad_forms[0]
    assert form["client_assertion"] == [ID_TOKEN]
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assert form["client_id"] == [CLIENT] and form["grant_type"] == ["client_credentials"]
    assert "https://management.azure.com/.default" in form["scope"][0]
    assert "client_secret" not in form
    assert principal.object_id and principal.principal_type == "ServicePrincipal"

    # The token it got is what every ARM request carries.
    project = load_project(example("diabetes-blob"))
    options = DeployOptions(subscription_id=SUB, app_name="diab-app", location="westeurope")
    plan(project, "myreg.azurecr.io/d@sha256:" + "a" * 64, options, credential=credential,
         settings=PipelineSettings(transport=arm.transport(), polling_interval=0))
    arm_requests = arm.arm_requests()
    assert arm_requests and all(r.authorization == f"Bearer {TOKEN}" for r in arm_requests)


def test_oidc_ids_from_the_environment(id_server: IdTokenServer) -> None:
    env = actions_env(id_server, AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CLIENT)
    assert isinstance(action_credential(env=env), ClientAssertionCredential)


def test_oidc_without_client_id_names_what_to_set(id_server: IdTokenServer) -> None:
    with pytest.raises(CredentialError) as e:
        action_credential(env=actions_env(id_server, AZURE_TENANT_ID=TENANT))
    assert "AZURE_CLIENT_ID (client-id)" in str(e.value) and "AZURE_TENANT_ID" not in e.value.message


def test_id_token_refused_says_to_grant_id_token_write() -> None:
    with IdTokenServer(status=403) as server:
        with pytest.raises(CredentialError) as e:
            github_id_token(env=actions_env(server))
    assert "403" in str(e.value) and "id-token: write" in str(e.value)
    with IdTokenServer() as server:
        env = {**actions_env(server), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong"}
        with pytest.raises(CredentialError) as e:
            github_id_token(env=env)
    assert "401" in str(e.value)


def test_service_principal_in_the_environment_is_used_outside_actions() -> None:
    env = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": "x"}
    assert isinstance(get_credential(env=env), EnvironmentCredential)
    assert isinstance(action_credential(env=env), EnvironmentCredential)  # no ID token to be had: the core's choice


def test_the_core_reads_no_actions_variable(id_server: IdTokenServer) -> None:
    """Only the wing asks for the job's ID token; the core signs in with an assertion only when given one."""
    env = actions_env(id_server, AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CLIENT, AZURE_CLIENT_SECRET="x")
    assert isinstance(get_credential(env=env), EnvironmentCredential)
    assert isinstance(get_credential(env=env, assertion=lambda: "a.b.c"), ClientAssertionCredential)
    assert id_server.requests == []


def test_nothing_set_up_ends_with_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelfunc.azure.credentials.shutil.which", lambda name: None)
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                 "IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    arm = FakeArm()
    arm.fail("GET", "/metadata/identity", 400, times=10)
    credential = get_credential(env={}, transport=arm.transport())
    assert isinstance(credential, DefaultAzureCredential)
    with pytest.raises(CredentialError) as e:
        check(credential)
    assert "169.254.169.254" in arm.hosts()  # the managed identity endpoint was asked (and answered by the test)
    assert e.value.hint == SETUP_HINT and e.value.exit_code == 1
    text = str(e.value)
    assert "id-token: write" in text and "AZURE_CLIENT_SECRET" in text and "az login" in text
