"""What a user asks for, made into the core's options: one builder per verb, shared by the two front doors.

The CLI (``modelfunc.cli``) and the action's steps (``modelfunc.action.steps``) read their values differently
(click options; ``INPUT_*`` variables) and hand them here as named values — ``None`` for "not given" — so a
default, a bound or a rule is written once. Nothing here reads the environment or imports an Azure SDK at
import time (``modelfunc --help`` stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .azure.clouds import Cloud
    from .azure.options import DeployOptions

MAX_SECONDS = 24 * 3600.0  # a day: the bound of every timeout (--timeout, the *-timeout inputs); beyond it, a hang

DEFAULT_SLOT, DEFAULT_PLAN, DEFAULT_SKU = "staging", "premium-container", "EP1"
DEFAULT_DEPLOY_TIMEOUT = 900.0


def deploy_options(subscription_id: str | None, *, app_name: str | None = None, resource_group: str | None = None,
                   location: str | None = None, registry: str | None = None, slot_name: str | None = None,
                   hosting_plan: str | None = None, sku: str | None = None, storage_prefix: str | None = None,
                   no_swap: bool = False, run_test: bool = True, timeout: float | None = None,
                   test_timeout: float | None = None, redis_connection_string: str | None = None) -> DeployOptions:
    """``DeployOptions`` from what `modelfunc deploy` or the action's deploy step was given (None: the default).

    ``test_timeout`` None waits as long as the trigger's documented latency asks for."""
    from .azure.options import DeployOptions

    return DeployOptions(
        subscription_id=subscription_id or "", app_name=app_name, resource_group=resource_group, location=location,
        registry=registry, slot_name=slot_name or DEFAULT_SLOT,
        hosting_plan=(hosting_plan or DEFAULT_PLAN),  # type: ignore[arg-type]
        sku=sku or DEFAULT_SKU, storage_prefix=storage_prefix, no_swap=no_swap, run_test=run_test,
        timeout=DEFAULT_DEPLOY_TIMEOUT if timeout is None else timeout, test_timeout=test_timeout,
        redis_connection_string=redis_connection_string or None)


def azure_settings(cloud_name: str | None, arm_endpoint: str | None) -> tuple[Any, Cloud | None]:
    """(PipelineSettings, Cloud or None) for ``--cloud``/``--arm-endpoint`` (the ``cloud``/``arm-endpoint``
    inputs). The public cloud needs no look-up: the SDK's defaults are used."""
    from .azure import clients, clouds

    cloud = clouds.for_options(cloud_name or None, arm_endpoint or None)
    return clouds.with_cloud(clients.default_settings(), cloud), cloud
