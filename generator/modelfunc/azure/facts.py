"""The facts about Azure that the deploy relies on, each with the public page it comes from.

One home for them: the deploy code reads these names, and the ARM fake the tests use
(tests/support/azurefake.py) enforces the same facts, so a wrong belief shows up as a refusal in a test
rather than on a user's first real run. Built-in role *ids* are deliberately absent: roles are
resolved by name at the assignment scope (``roleDefinitions?$filter=roleName eq '…'``), exactly as
``az role assignment create --role NAME`` does; the ids are pinned only in the tests, against the
built-in roles reference.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..triggers import AnyTrigger as Trigger

# ---------------------------------------------------------------------------------------------- roles
# Names as the built-in roles reference spells them:
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
ACR_PULL = "AcrPull"  # .../built-in-roles/containers#acrpull
STORAGE_ACCOUNT_CONTRIBUTOR = "Storage Account Contributor"  # .../built-in-roles/storage#storage-account-contributor
BLOB_DATA_OWNER = "Storage Blob Data Owner"  # .../built-in-roles/storage#storage-blob-data-owner
BLOB_DATA_CONTRIBUTOR = "Storage Blob Data Contributor"  # .../built-in-roles/storage#storage-blob-data-contributor
QUEUE_DATA_CONTRIBUTOR = "Storage Queue Data Contributor"  # .../built-in-roles/storage#storage-queue-data-contributor
TABLE_DATA_CONTRIBUTOR = "Storage Table Data Contributor"  # .../built-in-roles/storage#storage-table-data-contributor


def host_storage_roles(trigger: Trigger) -> tuple[str, ...]:
    """Roles the app's identity needs on its ``AzureWebJobsStorage`` account (identity-based connection).

    "Connecting to host storage with an identity", https://learn.microsoft.com/azure/azure-functions/
    functions-reference#connecting-to-host-storage-with-an-identity: the host alone needs Storage Blob
    Data Owner, diagnostic events add Storage Table Data Contributor, and the blob trigger (which keeps
    its receipts and queues there whatever its own connection: ``trigger.host_storage_queues``) needs all of
    Storage Account Contributor, Storage Blob Data Owner and Storage Queue Data Contributor.
    """
    roles = [BLOB_DATA_OWNER, TABLE_DATA_CONTRIBUTOR]
    if trigger.host_storage_queues:
        roles += [STORAGE_ACCOUNT_CONTRIBUTOR, QUEUE_DATA_CONTRIBUTOR]
    return tuple(roles)


# The blob trigger's own connection: "Storage Blob Data Owner and Storage Queue Data Contributor" (poison
# messages go to a queue on that account). https://learn.microsoft.com/azure/azure-functions/
# functions-bindings-storage-blob-trigger#grant-permission-to-the-identity
BLOB_TRIGGER_ROLES = (BLOB_DATA_OWNER, QUEUE_DATA_CONTRIBUTOR)

# The deploying principal uploads the sample and reads the answer (the blob test): read/write on blobs.
BLOB_TEST_ROLE = BLOB_DATA_CONTRIBUTOR

# ------------------------------------------------------------------------------------------ Service Bus
# Roles on the namespace (built-in roles reference, .../built-in-roles/integration#azure-service-bus-data-receiver
# and #azure-service-bus-data-sender). The Functions docs' "Grant permission to the identity" table for Service
# Bus (https://learn.microsoft.com/azure/azure-functions/functions-bindings-service-bus#grant-permission-to-the-identity)
# names Azure Service Bus Data Receiver for the trigger and Azure Service Bus Data Sender for the output binding.
# Scope: the slot's own namespace (it holds only that slot's two queues), the entity scope the Service Bus docs
# list (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-managed-service-identity#resource-scope).
BUS_DATA_RECEIVER = "Azure Service Bus Data Receiver"
BUS_DATA_SENDER = "Azure Service Bus Data Sender"
BUS_APP_ROLES = (BUS_DATA_RECEIVER, BUS_DATA_SENDER)  # the app: receive its input queue, send to its output queue
BUS_TEST_ROLES = (BUS_DATA_SENDER, BUS_DATA_RECEIVER)  # the deploying principal: send the sample, read the answer

# An identity-based Service Bus connection names the namespace: triggers.FULLY_QUALIFIED_NAMESPACE_SUFFIX (with its
# source); the host name is read from the namespace's ARM answer (serviceBusEndpoint), never built.

# The Basic tier has queues (not topics) and Microsoft Entra (RBAC) access, which is all a queue-triggered app
# needs; https://learn.microsoft.com/azure/service-bus-messaging/service-bus-premium-messaging#premium-vs-standard
# (tier comparison) and https://azure.microsoft.com/pricing/details/service-bus/.
BUS_SKU = "Basic"

# Namespace names are global: 6-50 letters, digits and hyphens, starting with a letter, ending with a letter or
# digit, and not ending in "-sb" or "-mgmt" (reserved). https://learn.microsoft.com/azure/azure-resource-manager/
# management/resource-name-rules#microsoftservicebus and https://learn.microsoft.com/rest/api/servicebus/
# controlplane-stable/namespaces/create-or-update (namespaceName).
BUS_NAMESPACE_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]")
BUS_RESERVED_ENDINGS = ("-sb", "-mgmt")


def bus_namespace_name_ok(name: str) -> bool:
    return bool(BUS_NAMESPACE_RE.fullmatch(name)) and not name.lower().endswith(BUS_RESERVED_ENDINGS)


# The Python library's Service Bus output converter takes only str or bytes (azure-functions,
# azure/functions/servicebus.py ServiceBusMessageOutConverter.check_output_type_annotation): an answer message
# cannot carry a property naming the deployment. The runtime writes a stamp blob per message instead, named by
# the trigger's MessageId metadata (a binding expression: https://learn.microsoft.com/azure/azure-functions/
# functions-bindings-service-bus-trigger#message-metadata), in the host storage account's stamps container.


# --------------------------------------------------------------------------------- identity settings
# Identity-based connections with a user-assigned identity: "<CONNECTION>__credential" = "managedidentity"
# and "<CONNECTION>__clientId" = the identity's client id, beside the service URI or account name.
# https://learn.microsoft.com/azure/azure-functions/functions-reference#common-properties-for-identity-based-connections
CREDENTIAL_SUFFIX = "__credential"
CLIENT_ID_SUFFIX = "__clientId"
MANAGED_IDENTITY = "managedidentity"


# Host storage by identity: "AzureWebJobsStorage__blobServiceUri" / "__queueServiceUri" / "__tableServiceUri" in
# general; "AzureWebJobsStorage__accountName" alone only for an account with global Azure's default DNS suffix,
# "valid only if the account isn't in a sovereign cloud and doesn't have a custom DNS".
# https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
HOST_STORAGE = "AzureWebJobsStorage"
PUBLIC_STORAGE_SUFFIX = "core.windows.net"


def host_storage_settings(account: str, storage_suffix: str) -> dict[str, str]:
    """The ``AzureWebJobsStorage`` settings naming the host account (the identity's settings come beside them)."""
    if storage_suffix.strip(".").lower() == PUBLIC_STORAGE_SUFFIX:
        return {f"{HOST_STORAGE}__accountName": account}
    return {f"{HOST_STORAGE}__{service}ServiceUri": f"https://{account}.{service}.{storage_suffix.strip('.')}"
            for service in ("blob", "queue", "table")}


def identity_connection(connection: str, client_id: str) -> dict[str, str]:
    return {f"{connection}{CREDENTIAL_SUFFIX}": MANAGED_IDENTITY, f"{connection}{CLIENT_ID_SUFFIX}": client_id}


# The registry a container app pulls from, as `az functionapp config container set` writes it (and the
# portal shows it): https://learn.microsoft.com/cli/azure/functionapp/config/container#az-functionapp-config-container-set
REGISTRY_URL_SETTING = "DOCKER_REGISTRY_SERVER_URL"

# The key the Functions host protects the function keys it stores with (AzureWebEncryptionKey, else this, else
# the platform's WEBSITE_AUTH_ENCRYPTION_KEY). `az functionapp create` sets a random one on a Linux app
# (azure-cli, appservice/custom.py create_functionapp); modelfunc does the same, once per slot, keeps it on
# every later deploy, and makes it sticky: a slot's stored keys stay readable by the host that wrote them.
# https://learn.microsoft.com/azure/app-service/reference-app-settings (MACHINEKEY_DecryptionKey)
MACHINE_KEY_SETTING = "MACHINEKEY_DecryptionKey"


def new_machine_key() -> str:
    """A random key as the CLI makes one: 32 random bytes, upper-case hex."""
    return secrets.token_hex(32).upper()


# ------------------------------------------------------------------------------------------- host ids
# The Functions host derives its host ID from the site name (a slot's site name is "<app>-<slot>"),
# lower-cased and cut to 32 characters; two hosts with one ID on one storage account make the v4 host
# stop. The ID can be set with the app setting AzureFunctionsWebHost__hostid: 1-32 lower-case letters,
# digits and dashes, no leading, trailing or double dash.
# https://learn.microsoft.com/azure/azure-functions/storage-considerations#host-id-considerations
HOST_ID_LIMIT = 32
HOST_ID_SETTING = "AzureFunctionsWebHost__hostid"
_HOST_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-)){0,31}(?<!-)")


def default_host_id(site_name: str) -> str:
    return site_name.lower()[:HOST_ID_LIMIT]


def host_ids_collide(app: str, slot: str) -> bool:
    """True when production and the slot would get the same derived host ID (app names of 32+ characters)."""
    return default_host_id(app) == default_host_id(f"{app}-{slot}")


def explicit_host_id(app: str, slot: str | None) -> str:
    """A valid, per-slot host ID for an app whose derived ones collide: a readable stem and a hash."""
    digest = hashlib.sha256(f"{app.lower()}/{(slot or 'production').lower()}".encode()).hexdigest()[:8]
    stem = re.sub(r"-+", "-", app.lower()[: HOST_ID_LIMIT - len(digest) - 1]).strip("-")
    host_id = f"{stem}-{digest}"
    assert _HOST_ID_RE.fullmatch(host_id), host_id
    return host_id


# ------------------------------------------------------------------------------------- test timeouts
# The polling blob trigger (source LogsAndContainerScan) can take minutes to notice a new blob: "up to a
# 10-minute delay in processing new blobs" when the app has gone idle, more with large containers.
# https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#polling-and-latency
POLLING_BLOB_TRIGGER_LATENCY = 600.0
TEST_TIMEOUT = 120.0  # an HTTP answer, or a blob pushed by Event Grid


def azure_test_timeout(trigger: Trigger) -> float:
    """How long a test in Azure waits for the sample's answer by default, given the trigger's documented latency."""
    return POLLING_BLOB_TRIGGER_LATENCY if trigger.polls else TEST_TIMEOUT


# ------------------------------------------------------------------------------------- hosting plans
# Deployment slots exist on Standard, Premium and Isolated App Service plans and on Elastic Premium;
# Basic has none. https://learn.microsoft.com/azure/app-service/deploy-staging-slots#prerequisites and
# https://learn.microsoft.com/azure/azure-functions/functions-deployment-slots (Flex Consumption: no slots,
# https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#considerations)
TIERS_WITH_SLOTS = frozenset({"Standard", "Premium", "PremiumV2", "PremiumV3", "PremiumV4", "ElasticPremium",
                              "Isolated", "IsolatedV2"})


# ------------------------------------------------------------------------- zip deploy (Flex, OneDeploy)
# POST https://<scm host>/api/publish answers 202 Accepted while Kudu deploys in the background: its Location
# names the status (/api/deployments/latest?deployer=...), a Flex app's Kudu also answers the deployment id in the
# body. The deployment's record, GET /api/deployments/<id>, carries "status" (Kudu's DeployStatus) and
# "status_text", "progress", "complete", "log_url". Sources: projectkudu/kudu PushDeploymentController
# (PushDeployAsync: 202 + Location + Retry-After), and azure-cli 2.91 appservice/custom.py enable_zip_deploy_flex
# ("Deployment endpoint responded with status code %d for deployment id %s") with
# _check_zip_deployment_status_flex, which reads these codes: 4 success; 3 failed; 5 cancelled because another
# deployment is in progress; 6 partially successful; -1 cancelled. 0-2 are Pending, Building, Deploying
# (azure-functions-core-tools DeployStatus, KuduLiteDeploymentHelpers.WaitForFlexDeployment).
KUDU_STATUS_NAMES = {-1: "Cancelled", 0: "Pending", 1: "Building", 2: "Deploying", 3: "Failed", 4: "Success",
                     5: "Conflict", 6: "PartialSuccess"}
KUDU_SUCCESS = 4
KUDU_FAILURES = frozenset({-1, 3, 5, 6})
KUDU_DEPLOYMENT_ID_HEADER = "SCM-DEPLOYMENT-ID"  # Kudu's Constants.ScmDeploymentIdHeader (PushDeployAsync)

# A role assignment takes minutes to apply: "it can take up to 10 minutes for changes to take effect"
# (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting, "Role assignment changes are not
# being detected"). The Flex app's Kudu uploads the package to the deployment container with the app's identity,
# whose Storage Blob Data Owner was granted moments before: Azure Storage answers 403 "This request is not
# authorized to perform this operation" until it applies (seen as a failed deployment in
# https://github.com/Azure/azure-functions-core-tools/issues/4346). Retried up to this bound.
ROLE_PROPAGATION_SECONDS = 600.0

# Event Grid validates a webhook when its subscription is created; while the app's blobs extension endpoint
# (/runtime/webhooks/blobs) does not answer yet, the create fails with code "Url validation": "Webhook validation
# handshake failed for https://<app>.azurewebsites.net/runtime/webhooks/blobs. Http POST request failed with
# response code Unknown. For troublehooting, visit https://aka.ms/esvalidation." (their spelling; quoted in
# https://github.com/MicrosoftDocs/azure-docs/issues/107285 and https://github.com/Azure/azure-cli/issues/27768;
# https://learn.microsoft.com/azure/event-grid/troubleshoot-subscription-validation: "If that validation
# handshake doesn't complete, subscription creation fails"). Retried up to this bound once the app is healthy.
EVENTGRID_VALIDATION_FAILED = "Url validation"
WEBHOOK_VALIDATION_SECONDS = 300.0
