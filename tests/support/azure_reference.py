"""Facts copied from Microsoft's public references, each with its page: what the ARM fake answers and what the
tests expect. Nothing here comes from modelfunc's own code, so a wrong belief in the code cannot pass both.

The only place with built-in role ids in this repository (the code resolves roles by name).
"""

from __future__ import annotations

# Azure built-in roles, https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
# (the "ID" column; the same ids in every Azure cloud).
BUILTIN_ROLES = {
    # .../built-in-roles/containers#acrpull
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    # .../built-in-roles/storage#storage-account-contributor
    "Storage Account Contributor": "17d1049b-9a84-46fb-8f53-869881c3d3ab",
    # .../built-in-roles/storage#storage-blob-data-contributor
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    # .../built-in-roles/storage#storage-blob-data-owner
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    # .../built-in-roles/storage#storage-blob-data-reader
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    # .../built-in-roles/storage#storage-queue-data-contributor
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    # .../built-in-roles/storage#storage-table-data-contributor
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    # .../built-in-roles/privileged#contributor
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    # .../built-in-roles/integration#azure-service-bus-data-receiver
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    # .../built-in-roles/integration#azure-service-bus-data-sender
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
}

# The id modelfunc used to send for "Storage Blob Data Owner": no built-in role has it, so Azure answers
# 400 RoleDefinitionDoesNotExist (the fake does too).
WRONG_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0605d2a3f1fa"

# Identity-based host storage: "Connecting to host storage with an identity",
# https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
HOST_STORAGE_ROLES = {"Storage Blob Data Owner"}  # the host alone
HOST_STORAGE_DIAGNOSTICS_ROLES = {"Storage Table Data Contributor"}  # diagnostic events
HOST_STORAGE_BLOB_TRIGGER_ROLES = {"Storage Account Contributor", "Storage Blob Data Owner",
                                   "Storage Queue Data Contributor"}  # "Azure Blobs (trigger only): all of"
# The blob trigger's own connection: https://learn.microsoft.com/azure/azure-functions/
# functions-bindings-storage-blob-trigger#grant-permission-to-the-identity
BLOB_TRIGGER_CONNECTION_ROLES = {"Storage Blob Data Owner", "Storage Queue Data Contributor"}

# App Service plan tiers without deployment slots: Basic (https://learn.microsoft.com/azure/app-service/
# deploy-staging-slots#prerequisites: "Standard, Premium, or Isolated tier").
TIERS_WITHOUT_SLOTS = {"Free", "Shared", "Basic"}

# A user-assigned identity in a connection: "<CONNECTION>__credential" set to "managedidentity" and
# "<CONNECTION>__clientId", https://learn.microsoft.com/azure/azure-functions/
# functions-reference#common-properties-for-identity-based-connections

# Service Bus with an identity: https://learn.microsoft.com/azure/azure-functions/
# functions-bindings-service-bus#grant-permission-to-the-identity ("Trigger: Azure Service Bus Data Receiver ...;
# Output binding: Azure Service Bus Data Sender"), and the connection's
# "<CONNECTION>__fullyQualifiedNamespace" = "<namespace>.servicebus.windows.net" (same page, identity-based
# connections).
SERVICE_BUS_TRIGGER_ROLE = "Azure Service Bus Data Receiver"
SERVICE_BUS_OUTPUT_ROLE = "Azure Service Bus Data Sender"
SERVICE_BUS_NAMESPACE_SETTING = "{connection}__fullyQualifiedNamespace"

# Service Bus namespace names: https://learn.microsoft.com/azure/azure-resource-manager/management/
# resource-name-rules#microsoftservicebus — 6-50 characters, alphanumerics and hyphens, start with a letter, end
# with a letter or number; and "The namespace name can't end with -sb or -mgmt" (Service Bus create-namespace
# docs, https://learn.microsoft.com/azure/service-bus-messaging/service-bus-quickstart-portal).
SERVICE_BUS_NAME_LENGTH = (6, 50)
SERVICE_BUS_RESERVED_ENDINGS = ("-sb", "-mgmt")
