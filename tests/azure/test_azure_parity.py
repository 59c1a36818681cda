"""Microsoft's own tool as a peer (issue 11): the Azure CLI (``azure-cli`` from PyPI, in its own venv) runs the
manual recipe for a function app from a container image against one instance of the out-of-process ARM + Azure
AD fake (tests/support/armserver.py), ``modelfunc deploy`` runs against another with the same names, and the two end
states are compared aspect by aspect. Two apps: the blob-trigger one (examples/diabetes-blob) and the
service-bus-queue one (examples/diabetes-servicebus: az's own ``servicebus`` commands, AAZ REST code, against the
model's Service Bus).

Every difference must be a row of the app's "Differences" table in docs/azure-parity.md (aspect | az recipe |
modelfunc | why): a new, unexplained difference fails the test, and so does a row that no longer differs (the
document stays true); a difference that is not intentional is fixed in modelfunc, never written down. Role
assignments are compared by role *name* (ids mapped back through tests/support/azure_reference.py) and scope; app
settings by name, and the connection settings (no secret among them) by value too.

az signs in offline to the fake as a custom cloud (``az cloud register --endpoint-resource-manager``, read from
its /metadata/endpoints), with a service principal whose secret is passed as ``@file`` (never on a command line
or in a log), TLS verified against the fixture's CA, a throwaway AZURE_CONFIG_DIR and a dead proxy for every
host but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.armserver_fixture import ArmServer, start_arm_server
from support.azcli import AzCli, python_of
from support.azure_reference import BUILTIN_ROLES
from support.azurefake import DEPLOYER_OID, REGISTRY_ID, REGISTRY_PASSWORD, STORAGE_KEY
from support.core import ROOT, run_modelfunc
from support.secrets_guard import secret

DOC = ROOT / "docs" / "azure-parity.md"
SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-1111-2222-3333-000000000000"
CLIENT = "0c1d2e3f-1111-2222-3333-000000000000"
CLIENT_SECRET = secret("sp-client-secret-NEVER-PRINTED-8675309")
IMAGE = "myreg.azurecr.io/diabetes@sha256:" + "a" * 64
APP, SLOT, RG, PREFIX = "diab-app", "staging", "diab-app-rg", "diab"
IDENTITY, PLAN = f"{APP}-id", f"{APP}-plan"
HOST, TRIG, STAG = f"{PREFIX}host", f"{PREFIX}trig", f"{PREFIX}stag"
BUS, BUS_STAG = f"bus-{PREFIX}", f"bus-{PREFIX}-stag"  # the names modelfunc gives (README, "Deploying to Azure")
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}"
SITE = f"{RG_ID}/providers/Microsoft.Web/sites/{APP}"
ROLE_NAMES = {v: k for k, v in BUILTIN_ROLES.items()}
# Settings compared by value too: the identity-based connections' (names of accounts and namespaces, a client id,
# "managedidentity"); never a key, a password or the machine key.
VALUE_SUFFIXES = ("__accountName", "__credential", "__clientId", "__blobServiceUri", "__queueServiceUri",
                  "__fullyQualifiedNamespace")


@dataclass(frozen=True)
class App:
    """One example app: its trigger, connection and queues (as its modelfunc.yaml has them), the function its image
    lists, and the docs/azure-parity.md sections of its tables."""

    example: str
    trigger: str
    connection: str
    function: str
    section: str = ""  # "" for the blob app's "Differences"/"The same in both"; " (service-bus-queue)" ...
    queues: tuple[str, ...] = ()

    @property
    def bus(self) -> bool:
        return self.trigger == "service-bus-queue"


BLOB_APP = App("diabetes-blob", "blob", "TriggerConnectionString", "score_blob")
BUS_APP = App("diabetes-servicebus", "service-bus-queue", "ServiceBusConnection", "score_message",
              " (service-bus-queue)", ("scoring-requests", "scoring-results"))
APPS = (BLOB_APP, BUS_APP)


def az_path() -> str | None:
    """The Azure CLI: $MODELFUNC_TEST_AZ, else the venv `make` installs it into (.venv-az), else none."""
    configured = os.environ.get("MODELFUNC_TEST_AZ")
    if configured:
        return configured
    local = ROOT / ".venv-az" / "bin" / "az"
    return str(local) if local.exists() else None


AZ = az_path()
needs_az = pytest.mark.skipif(AZ is None, reason="azure-cli is not installed: `make .venv-az/bin/az` installs it "
                                                  "(`make test`, and so CI, does), or set MODELFUNC_TEST_AZ")


def isolated_env(server: ArmServer) -> dict[str, str]:
    """The server's CA, no sign-in from the environment, and no way out of 127.0.0.1 (a proxy nobody listens on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MODELFUNC_", "ACTIONS_ID_TOKEN"))}
    return {**env, **server.env,
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
            "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1,localhost"}


class Az:
    """The Azure CLI as a child process, signed in to one fake cloud; outputs kept to check for secrets."""

    def __init__(self, server: ArmServer, tmp: Path) -> None:
        assert AZ is not None
        self.config = config = tmp / "azure-config"
        config.mkdir(parents=True)
        self.env = {**isolated_env(server), "AZURE_CONFIG_DIR": str(config), "AZURE_CORE_COLLECT_TELEMETRY": "false",
                    "AZURE_CORE_NO_COLOR": "true", "AZURE_CORE_SURVEY_MESSAGE": "false"}
        self.server, self.tmp, self.outputs = server, tmp, []
        self.cli = AzCli(AZ, self.env)  # one process for the whole recipe, a fresh CLI per command (support/azcli.py)

    def __call__(self, *args: str, output: str = "none") -> str:
        proc = self.cli([*args, "-o", output], timeout=120)
        self.outputs.append(proc.stdout + proc.stderr)
        if proc.exit != 0:
            raise AssertionError(f"az {args[0]} {args[1] if len(args) > 1 else ''} exited {proc.exit}:\n"
                                 f"{proc.stderr[-3000:]}\n--- server\n{self.server.output()[-3000:]}")
        return proc.stdout.strip()

    def close(self) -> None:
        self.cli.close()

    def sign_in(self) -> None:
        self("cloud", "register", "-n", "FakeCloud", "--endpoint-resource-manager", f"{self.server.url}/")
        self("cloud", "set", "-n", "FakeCloud")
        self("config", "set", "core.instance_discovery=false", "--only-show-errors")
        password = self.tmp / "sp-secret"  # az reads `@file` itself: the secret is on no command line
        password.write_text(CLIENT_SECRET, encoding="utf-8")
        password.chmod(0o600)
        try:
            self("login", "--service-principal", "-u", CLIENT, "-p", f"@{password}", "--tenant", TENANT)
        finally:
            password.unlink()
        self("account", "set", "-s", SUB)


def az_recipe(az: Az, app_: App) -> None:
    """The manual recipe for a function app from a container image (the one the retired azureml ``package()``
    docs prescribed), with the identity-based pull and connections modelfunc uses, in az commands. A blob app gets
    a trigger account per side; a service-bus-queue app a Service Bus namespace per side instead, with its queues
    (the Service Bus quickstart's ``az servicebus namespace create`` / ``queue create``, Basic, local auth off)."""
    az.sign_in()
    g = ["-g", RG]
    connection = app_.connection
    az("group", "create", "-n", RG, "-l", "westeurope")
    az("identity", "create", *g, "-n", IDENTITY)
    shown = az("identity", "show", *g, "-n", IDENTITY, "--query", "[id, principalId, clientId]", output="tsv")
    identity = dict(zip(("id", "principal", "client"), shown.split(), strict=True))
    for account in (HOST,) if app_.bus else (HOST, TRIG, STAG):
        az("storage", "account", "create", *g, "-n", account, "-l", "westeurope", "--sku", "Standard_LRS",
           "--kind", "StorageV2", "--min-tls-version", "TLS1_2", "--allow-blob-public-access", "false")
    hosts: dict[str, str] = {}  # namespace -> its host name, as ARM's serviceBusEndpoint gives it
    for namespace in (BUS, BUS_STAG) if app_.bus else ():
        az("servicebus", "namespace", "create", *g, "-n", namespace, "-l", "westeurope", "--sku", "Basic",
           "--disable-local-auth", "true", "--min-tls", "1.2")
        for queue in app_.queues:
            az("servicebus", "queue", "create", *g, "--namespace-name", namespace, "-n", queue)
        endpoint = az("servicebus", "namespace", "show", *g, "-n", namespace, "--query", "serviceBusEndpoint",
                      output="tsv")
        hosts[namespace] = re.sub(r"^https://|:443/?$|/$", "", endpoint)
    az("functionapp", "plan", "create", *g, "-n", PLAN, "--sku", "EP1", "--is-linux", "-l", "westeurope")
    app = [*g, "-n", APP]
    az("functionapp", "create", *app, "--plan", PLAN, "--storage-account", HOST, "--image", IMAGE,
       "--functions-version", "4", "--os-type", "Linux", "--disable-app-insights", "--only-show-errors")
    acr = json.dumps({"acrUseManagedIdentityCreds": True, "acrUserManagedIdentityID": identity["client"]})
    az("functionapp", "identity", "assign", *app, "--identities", identity["id"])
    az("functionapp", "config", "set", *app, "--generic-configurations", acr, "--only-show-errors")
    storage = f"{RG_ID}/providers/Microsoft.Storage/storageAccounts"
    roles = [(REGISTRY_ID, "AcrPull")]
    # Host storage by identity (Functions docs, "Connecting to host storage with an identity"): Blob Data Owner,
    # Table Data Contributor (diagnostic events); the blob trigger adds Account Contributor and Queue Data
    # Contributor there, and Blob Data Owner and Queue Data Contributor on its own account.
    roles += [(f"{storage}/{HOST}", r) for r in ("Storage Blob Data Owner", "Storage Table Data Contributor")]
    if app_.bus:  # Functions docs, Service Bus "Grant permission to the identity": Receiver (trigger), Sender (output)
        roles += [(f"{RG_ID}/providers/Microsoft.ServiceBus/namespaces/{n}", r) for n in (BUS, BUS_STAG)
                  for r in ("Azure Service Bus Data Receiver", "Azure Service Bus Data Sender")]
    else:
        roles += [(f"{storage}/{HOST}", r) for r in ("Storage Account Contributor", "Storage Queue Data Contributor")]
        roles += [(f"{storage}/{a}", r) for a in (TRIG, STAG) for r in ("Storage Blob Data Owner",
                                                                        "Storage Queue Data Contributor")]
    for scope, role in roles:
        az("role", "assignment", "create", "--role", role, "--assignee-object-id", identity["principal"],
           "--assignee-principal-type", "ServicePrincipal", "--scope", scope)
    # Identity instead of keys and passwords: what `functionapp create` wrote with keys goes.
    az("functionapp", "config", "appsettings", "delete", *app, "--setting-names", "AzureWebJobsStorage",
       "DOCKER_REGISTRY_SERVER_USERNAME", "DOCKER_REGISTRY_SERVER_PASSWORD", "--only-show-errors")
    client = identity["client"]
    az("functionapp", "config", "appsettings", "set", *app, "--only-show-errors", "--settings",
       "FUNCTIONS_WORKER_RUNTIME=python", f"AzureWebJobsStorage__accountName={HOST}",
       "AzureWebJobsStorage__credential=managedidentity", f"AzureWebJobsStorage__clientId={client}",
       f"{connection}__credential=managedidentity", f"{connection}__clientId={client}")

    def own(side: str) -> list[str]:  # each side's own trigger account or namespace: a slot setting
        if app_.bus:
            return [f"{connection}__fullyQualifiedNamespace={hosts[BUS if side == 'production' else BUS_STAG]}"]
        account = TRIG if side == "production" else STAG
        return [f"{connection}__blobServiceUri=https://{account}.blob.core.windows.net",
                f"{connection}__queueServiceUri=https://{account}.queue.core.windows.net"]

    az("functionapp", "config", "appsettings", "set", *app, "--only-show-errors", "--slot-settings",
       *own("production"))
    slot = [*app, "--slot", SLOT]
    az("functionapp", "deployment", "slot", "create", *app, "--slot", SLOT, "--configuration-source", APP)
    az("functionapp", "identity", "assign", *slot, "--identities", identity["id"])
    az("functionapp", "config", "set", *slot, "--generic-configurations", acr, "--only-show-errors")
    az("functionapp", "config", "container", "set", *slot, "--image", IMAGE, "--only-show-errors")
    az("functionapp", "config", "appsettings", "set", *slot, "--only-show-errors", "--slot-settings", *own(SLOT))
    az("functionapp", "deployment", "slot", "swap", *app, "--slot", SLOT, "--target-slot", "production")


def modelfunc_deploy(server: ArmServer, repo: Path) -> None:
    env = {**isolated_env(server), "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT,
           "AZURE_CLIENT_SECRET": CLIENT_SECRET}
    proc = run_modelfunc("deploy", str(repo), "--image", IMAGE, "--subscription-id", SUB, "--app-name", APP,
                         "--location", "westeurope", "--storage-prefix", PREFIX, "--slot-name", SLOT, "--no-test",
                         "--arm-endpoint", f"{server.url}/", env=env, timeout=90)
    assert CLIENT_SECRET not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-4000:] + "\n--- server\n" + server.output()[-3000:]


# ------------------------------------------------------------------------------------------- the end state


def end_state(store: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the comparison looks at, with ids, keys and the image replaced by stable names."""
    def get(path: str) -> dict[str, Any]:
        return store.get(path.lower()) or {}

    identities = {v["properties"]["principalId"]: v["name"] for v in store.values()
                  if v.get("type") == "microsoft.managedidentity/userassignedidentities"}
    clients = {v["properties"]["clientId"]: v["name"] for v in store.values()
               if v.get("type") == "microsoft.managedidentity/userassignedidentities"}

    def placeholder(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.replace(IMAGE, "<image>")
        for client, name in clients.items():
            value = value.replace(client, f"<client id of {name}>")
        return re.sub(r"^DOCKER\|mcr\.microsoft\.com/azure-functions/python:.*$", "DOCKER|<Functions base image>",
                      value)

    state: dict[str, Any] = {}
    plan = get(f"{RG_ID}/providers/Microsoft.Web/serverfarms/{PLAN}")
    state["plan sku"] = (plan.get("sku") or {}).get("name")
    state["plan tier"] = (plan.get("sku") or {}).get("tier")
    state["plan kind"] = plan.get("kind")
    state["plan reserved (Linux)"] = (plan.get("properties") or {}).get("reserved")
    sticky = set((get(f"{SITE}/config/slotConfigNames").get("properties") or {}).get("appSettingNames") or [])
    state["slot-sticky setting"] = sticky
    for label, path in (("production", SITE), ("slot", f"{SITE}/slots/{SLOT}")):
        site = get(path)
        props = site.get("properties") or {}
        config = get(f"{path}/config/web").get("properties") or {}
        identity = site.get("identity") or {}
        state[f"kind, {label}"] = site.get("kind")
        state[f"httpsOnly, {label}"] = props.get("httpsOnly")
        state[f"linuxFxVersion, {label}"] = placeholder(config.get("linuxFxVersion"))
        state[f"acrUseManagedIdentityCreds, {label}"] = config.get("acrUseManagedIdentityCreds")
        state[f"acrUserManagedIdentityID, {label}"] = placeholder(config.get("acrUserManagedIdentityID"))
        state[f"identity, {label}"] = f"{identity.get('type')}: " + ", ".join(
            sorted(k.rsplit("/", 1)[-1] for k in identity.get("userAssignedIdentities") or {}))
        settings = get(f"{path}/config/appsettings").get("properties") or {}
        state[f"app setting, {label}"] = set(settings)
        for name, value in settings.items():
            if name.endswith(VALUE_SUFFIXES):
                state[f"{name}, {label}"] = placeholder(value)
    of_type = {}
    for v in store.values():
        of_type.setdefault(v.get("type"), []).append(v)
    state["storage account"] = {
        f"{v['name']}: {(v.get('sku') or {}).get('name')}, {v.get('kind')}, "
        f"minimumTlsVersion {v['properties'].get('minimumTlsVersion')}, "
        f"allowBlobPublicAccess {v['properties'].get('allowBlobPublicAccess')}"
        for v in of_type.get("microsoft.storage/storageaccounts", []) if f"/resourcegroups/{RG}/" in v["id"].lower()}
    state["blob container"] = {"/".join(v["id"].split("/")[-5::4]) for v in of_type.get(
        "microsoft.storage/storageaccounts/blobservices/containers", [])}
    for v in of_type.get("microsoft.servicebus/namespaces", []):
        props, sku = v.get("properties") or {}, v.get("sku") or {}
        state[f"Service Bus namespace {v['name']}, sku"] = f"{sku.get('name')} (tier {sku.get('tier')})"
        state[f"Service Bus namespace {v['name']}, disableLocalAuth"] = props.get("disableLocalAuth")
        state[f"Service Bus namespace {v['name']}, minimumTlsVersion"] = props.get("minimumTlsVersion")
    queues = set()
    for v in of_type.get("microsoft.servicebus/namespaces/queues", []):  # with what was sent beside the defaults
        sent = ", ".join(f"{k}={w}" for k, w in sorted((v.get("properties") or {}).items()) if k != "status")
        queues.add("/".join(v["id"].split("/")[-3::2]) + (f" ({sent})" if sent else ""))
    state["Service Bus queue"] = queues
    roles = set()
    for v in store.values():
        if v.get("type") != "microsoft.authorization/roleassignments":
            continue
        props = v["properties"]
        role = ROLE_NAMES.get(props["roleDefinitionId"].rsplit("/", 1)[-1].lower(), props["roleDefinitionId"])
        who = identities.get(props["principalId"]) or ("the deploying principal"
                                                       if props["principalId"] == DEPLOYER_OID else "?")
        scope = props["scope"].split("/providers/")[-1].split("/", 1)[-1]  # e.g. storageaccounts/diabhost
        roles.add(f"{role} on {scope} for {who} ({props.get('principalType')})")
    state["role assignment"] = roles
    return state


ABSENT = "(none)"


def escape(cell: str) -> str:
    return cell.replace("|", "\\|")  # a pipe inside a Markdown table cell


def differences(az_state: dict[str, Any], mf_state: dict[str, Any]) -> dict[tuple[str, str, str], None]:
    """(aspect, az value, modelfunc value) for every difference; set aspects give one row per item."""
    out: dict[tuple[str, str, str], None] = {}
    for aspect in az_state.keys() | mf_state.keys():
        a, m = az_state.get(aspect), mf_state.get(aspect)
        if isinstance(a, set) or isinstance(m, set):
            for item in sorted((a or set()) - (m or set())):
                out[(aspect, item, ABSENT)] = None
            for item in sorted((m or set()) - (a or set())):
                out[(aspect, ABSENT, item)] = None
        elif a != m:
            out[(aspect, str(a), str(m))] = None
    return out


def documented(section: str) -> dict[tuple[str, ...], str]:
    """The rows of a table under ``## {section}`` in docs/azure-parity.md: the cells but the last -> the last."""
    rows: dict[tuple[str, ...], str] = {}
    inside = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line[3:].strip() == section
            continue
        if inside and line.startswith("|") and not re.match(r"^\|\s*-", line):
            cells = [c.strip().strip("`").replace("\\|", "|") for c in line.strip().strip("|").split(" | ")]
            rows[tuple(cells[:-1])] = cells[-1]
    rows.pop(next(iter(rows), None), None)  # the header (no table: no rows)
    return rows


# ------------------------------------------------------------------------------------------- the test


@pytest.fixture(params=APPS, ids=lambda a: a.trigger)
def app(request: pytest.FixtureRequest) -> App:
    return request.param


@pytest.fixture
def two_clouds(tmp_path: Path, app: App) -> Iterator[tuple[ArmServer, ArmServer]]:
    functions = {IMAGE: [app.function]}
    with ThreadPoolExecutor(2) as pool:  # two independent servers: started side by side
        starting = [pool.submit(start_arm_server, tmp_path / name, image_functions=functions)
                    for name in ("az-cloud", "modelfunc-cloud")]
        wait(starting)
    started = [f.result() for f in starting if f.exception() is None]
    try:
        for f in starting:
            f.result()  # a server that did not start: its error
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@needs_az
def test_the_end_state_matches_what_the_azure_cli_leaves_or_the_difference_is_documented(
        two_clouds: tuple[ArmServer, ArmServer], app: App, example, tmp_path: Path) -> None:  # noqa: ANN001
    az_cloud, mf_cloud = two_clouds
    repo = example(app.example)
    with ThreadPoolExecutor(1) as pool:  # modelfunc deploys to its own cloud while az works on the other
        deployed = pool.submit(modelfunc_deploy, mf_cloud, repo)
        started = time.monotonic()
        az = Az(az_cloud, tmp_path / "az")
        try:
            az_recipe(az, app)
        finally:  # az keeps a service principal's secret in its config directory (service_principal_entries.json)
            az.close()
            shutil.rmtree(az.config, ignore_errors=True)
        az_seconds = time.monotonic() - started
        deployed.result()

    # Nothing secret in what az printed (it was run with -o none; warnings only), and nothing left loopback.
    printed = "\n".join(az.outputs)
    for value in (CLIENT_SECRET, STORAGE_KEY, REGISTRY_PASSWORD):
        assert value not in printed
    assert all(r["peer"] == "127.0.0.1" and (r["tls"] or "").startswith("TLS") for r in az_cloud.requests())

    az_state, mf_state = end_state(az_cloud.store()), end_state(mf_cloud.store())
    found = differences(az_state, mf_state)
    known = documented(f"Differences{app.section}")  # intentional differences, each with its reason
    new = [row for row in found if row not in known]
    stale = [row for row in known if row not in found]
    unexplained = [row for row, why in known.items() if not why]
    assert not new, (f"differences from the Azure CLI's end state that docs/azure-parity.md (Differences{app.section}) "
                     "does not explain (fix modelfunc, or add the row with its reason):\n" + "\n".join(
                         "| " + " | ".join(f"`{escape(c)}`" for c in row) + " | why |" for row in new))
    assert not stale, "rows of docs/azure-parity.md that no longer differ: " + repr(stale)
    assert not unexplained, unexplained
    # The aspects both agree on are listed too, with the value they share.
    same = {(aspect, str(v)) for aspect, v in az_state.items() if not isinstance(v, set) and v == mf_state.get(aspect)}
    same |= {(aspect, item) for aspect, v in az_state.items() if isinstance(v, set) for item in v & mf_state[aspect]}
    shared = set(documented(f"The same in both{app.section}"))
    assert same == shared, "\n".join(f"{'missing from' if row in same else 'not shared, but in'} the doc: | "
                                      + " | ".join(f"`{escape(c)}`" for c in row) + " | note |"
                                      for row in sorted(same ^ shared))
    assert az_seconds < 120, f"the az recipe took {az_seconds:.0f} s"


@needs_az
def test_the_az_session_answers_each_command_as_az_started_for_it(tmp_path: Path) -> None:
    """The recipe's commands run in one process (support/azcli.py): each answers as ``az`` started for it alone
    would — its output, its warnings and errors, its exit code — and its flags apply to it only (``account list``
    logs a warning when nobody is signed in, unless ``--only-show-errors``)."""
    commands = [["account", "list", "-o", "none", "--only-show-errors"],
                ["account", "list", "-o", "none"],
                ["cloud", "show", "-n", "NoSuchCloud", "-o", "none"],
                ["cloud", "show", "-n", "AzureCloud", "--query", "name", "-o", "tsv"]]
    if python_of(str(AZ)) is None:
        pytest.skip(f"{AZ} is not the az of a venv: the recipe runs it per command")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MODELFUNC_", "ACTIONS_ID_TOKEN"))}
    env.update({"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",  # offline commands
                "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"})
    answers = {}
    for mode in ("per command", "session"):
        config = tmp_path / mode / "azure-config"
        config.mkdir(parents=True)
        cli = AzCli(str(AZ), {**env, "AZURE_CONFIG_DIR": str(config), "AZURE_CORE_COLLECT_TELEMETRY": "false",
                              "AZURE_CORE_NO_COLOR": "true", "AZURE_CORE_SURVEY_MESSAGE": "false"})
        if mode == "per command":
            cli.python = None  # `az ARGS`, a process each
        try:
            answers[mode] = [cli(command, timeout=120) for command in commands]
        finally:
            cli.close()
    assert answers["session"] == answers["per command"]
    quiet, logged, failed, shown = answers["session"]
    assert (quiet.exit, quiet.stderr) == (0, "") and 'Please run "az login"' in logged.stderr
    assert failed.exit != 0 and "NoSuchCloud" in failed.stderr and (shown.exit, shown.stdout) == (0, "AzureCloud\n")


def test_the_parity_doc_names_its_test() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "tests/azure/test_azure_parity.py" in text
    for app in APPS:
        assert documented(f"Differences{app.section}") and documented(f"The same in both{app.section}"), app.section
