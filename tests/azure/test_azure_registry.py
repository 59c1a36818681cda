"""A new user's first push: the container registry is created when the subscription has none by that name
(Basic, admin user disabled, tagged), found when it exists, and a name taken elsewhere or invalid is a clear
error naming the `registry` input. Against the ARM model through the real azure-mgmt-containerregistry client."""

from __future__ import annotations

import pytest
from modelfunc.azure import PipelineSettings
from modelfunc.azure.registry import ensure_registry
from modelfunc.errors import OptionError
from support.azurefake import REGISTRY_ID, SUB, FakeArm, FakeCredential

RG = f"/subscriptions/{SUB}/resourceGroups/diab-app-rg"


def ensure(arm: FakeArm, server: str, **kw: object) -> str:
    lines: list[str] = []
    args: dict[str, object] = {"credential": FakeCredential(), "subscription_id": SUB, "resource_group": "diab-app-rg",
                               "location": "westeurope", "tags": {"modelfunc-app": "diab-app"},
                               "acr_suffix": "azurecr.io",
                               "settings": PipelineSettings(transport=arm.transport(), polling_interval=0,
                                                            retry_backoff_factor=0), "progress": lines.append}
    result = ensure_registry(server, **{**args, **kw})  # type: ignore[arg-type]
    arm.progress_lines = lines  # type: ignore[attr-defined]
    return result


def test_an_existing_registry_is_found_and_nothing_is_written() -> None:
    arm = FakeArm()
    assert ensure(arm, "myreg.azurecr.io") == REGISTRY_ID
    assert arm.mutating() == []


def test_a_missing_registry_is_created_with_its_group_admin_user_disabled() -> None:
    arm = FakeArm()
    registry_id = ensure(arm, "diabscorers.azurecr.io")
    assert registry_id.lower() == f"{RG}/providers/Microsoft.ContainerRegistry/registries/diabscorers".lower()
    body = next(r.body for r in arm.mutating() if "/registries/" in r.path)
    assert body["sku"] == {"name": "Basic"} and body["properties"]["adminUserEnabled"] is False
    assert body["tags"] == {"modelfunc-app": "diab-app"} and body["location"] == "westeurope"
    assert arm.get(RG) is not None  # the group was made for it
    assert any("create container registry diabscorers" in line for line in arm.progress_lines)  # type: ignore[attr-defined]
    arm.requests.clear()
    assert ensure(arm, "diabscorers.azurecr.io") == registry_id and arm.mutating() == []  # and found next time


@pytest.mark.parametrize(("server", "fragment"), [
    ("ab.azurecr.io", "is not a valid container registry name"),
    ("diab_scorers.azurecr.io", "is not a valid container registry name"),
    ("ghcr.io", "is not an Azure Container Registry login server"),
])
def test_bad_registry_names_are_refused_before_any_write(server: str, fragment: str) -> None:
    arm = FakeArm()
    with pytest.raises(OptionError) as e:
        ensure(arm, server)
    assert e.value.field == "registry" and fragment in e.value.message
    assert arm.mutating() == []


def test_a_name_taken_in_another_subscription_is_a_clear_error() -> None:
    arm = FakeArm()
    arm.names_taken_elsewhere.add("popularname")
    with pytest.raises(OptionError) as e:
        ensure(arm, "popularname.azurecr.io")
    assert e.value.field == "registry" and "taken" in e.value.message and arm.mutating() == []


def test_a_new_group_needs_a_location() -> None:
    arm = FakeArm()
    with pytest.raises(OptionError) as e:
        ensure(arm, "diabscorers.azurecr.io", location=None)
    assert e.value.field == "location" and arm.mutating() == []

