"""What a deploy returns: the deployment's state and where it runs (the action's steps hand it on), the error
raised when a slot never becomes healthy, the id a deployment's answers carry, and the whole run's result."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..errors import SlotUnhealthy  # noqa: F401 - importable from azure.results as before
from .plan import Plan


class ServiceState(str, enum.Enum):
    """The state of a deployed app as the retired azureml SDK reported it."""

    TRANSITIONING = "Transitioning"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    FAILED = "Failed"


@dataclass
class SlotDeployment:
    """What :func:`deploy_to_slot` did and where the result runs.

    ``changed`` is False when production already runs the image (nothing to test or swap). The blob test
    reaches the slot's trigger storage at ``trigger_account_url`` with the deploying credential (the
    deploy gave it Storage Blob Data Contributor there). A Service Bus app's test sends to the queues of
    ``bus_namespace`` (the slot's, fully qualified) and reads the answer stamps in ``stamps_account_url``.
    """

    subscription_id: str
    resource_group: str
    app_name: str
    slot: str | None  # None: production itself (Flex Consumption has no slots)
    image: str
    app_url: str
    slot_url: str
    state: ServiceState
    changed: bool
    functions: tuple[str, ...] = ()
    trigger_account_url: str | None = None
    plan: Plan = field(default_factory=Plan)
    swapped: bool = False
    bus_namespace: str | None = None
    stamps_account_url: str | None = None

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> SlotDeployment:
        """Rebuild from :meth:`summary` (plus ``subscription_id``): how a later action step gets the deployment."""
        return cls(data["subscription_id"], data["resource_group"], data["app_name"], data.get("slot"), data["image"],
                   data["app_url"], data["slot_url"], ServiceState(data["state"]), bool(data["changed"]),
                   tuple(data.get("functions") or ()), data.get("trigger_account_url"),
                   swapped=bool(data.get("swapped")), bus_namespace=data.get("bus_namespace"),
                   stamps_account_url=data.get("stamps_account_url"))

    def summary(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "app_name": self.app_name,
                "resource_group": self.resource_group, "slot": self.slot,
                "image": self.image, "app_url": self.app_url, "slot_url": self.slot_url, "state": self.state.value,
                "changed": self.changed, "functions": list(self.functions), "swapped": self.swapped,
                "trigger_account_url": self.trigger_account_url, "bus_namespace": self.bus_namespace,
                "stamps_account_url": self.stamps_account_url}


def deployment_id(image: str) -> str:
    """The id a deployment's answers carry: the image's digest (``sha256:…``; a Flex package's likewise)."""
    return image.rsplit("@", 1)[-1]


@dataclass
class DeployResult:
    deployment: SlotDeployment | None
    plan: Plan
    report: Any = None  # the roundtrip.TestReport, when the test ran

    @property
    def passed(self) -> bool:
        return self.report is None or bool(self.report.passed)
