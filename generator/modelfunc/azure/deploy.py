"""Deploy an image (by digest) to Azure Functions through a staging slot: provision, ship, wait, test, swap.

The library entry points (the CLI and the action's scripts call these):

* :func:`plan` — read-only: every resource create / update / unchanged and the settings diff (masked);
* :func:`deploy_to_slot` — provision idempotently, put the image on the slot, wait until it is Healthy;
* :func:`test_slot` — the sample's round trip against the slot (its own trigger storage, by identity);
* :func:`swap` — the slot into production (only after the test passed);
* :func:`deploy` — all of the above in order; :func:`modelfunc.azure.destroy.destroy` removes it again.

This module only dispatches, and is the one place that chooses by hosting plan: :mod:`.premium` (an image on
a staging slot) or :mod:`.flex` (Flex Consumption: a zip package, no slots). The verbs both use are in
:mod:`.verbs`, what they return in :mod:`.results`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.core.credentials import TokenCredential

from ..config import Project
from ..errors import OptionError
from ..progress import Progress, quiet
from . import flex, premium
from .clients import PipelineSettings
from .options import DeployOptions
from .plan import Change, Plan
from .premium import swap
from .results import DeployResult, SlotDeployment
from .slottest import test_slot

__all__ = ["deploy", "deploy_to_slot", "plan", "swap", "test_slot"]


def plan(project: Project, image: str, options: DeployOptions, *, credential: TokenCredential,
         progress: Progress = quiet, settings: PipelineSettings | None = None) -> Plan:
    """Dry run: read-only (GET and list) requests only; returns the plan (``plan.render()`` prints it).

    Action step: pass the model repo's project, the ``image`` output of the package step, the inputs as
    DeployOptions and ``credentials.get_credential(tenant_id=..., client_id=...)``.
    """
    if options.hosting_plan == "flex":
        return flex.deploy_flex(project, options, credential=credential, progress=progress, settings=settings,
                                dry_run=True).plan
    return premium.plan(project, image, options, credential=credential, progress=progress, settings=settings)


def deploy_to_slot(project: Project, image: str, options: DeployOptions, *, credential: TokenCredential,
                   progress: Progress = quiet, settings: PipelineSettings | None = None,
                   sleep: Callable[[float], None] | None = None,
                   clock: Callable[[], float] | None = None) -> SlotDeployment:
    """Provision idempotently and run ``image`` (``REGISTRY/REPOSITORY@sha256:…``) on the staging slot.

    Returns once the slot is Healthy (running and listing the app's function), or at once with
    ``changed=False`` when production already runs the image. Raises SlotUnhealthy (with ``.deployment``)
    when it does not become healthy within ``options.timeout``; production is untouched either way.
    Action step: pass the result to :func:`test_slot`, then :func:`swap` when the test passed.
    """
    if options.hosting_plan == "flex":
        raise OptionError("Flex Consumption has no deployment slots", field="hosting-plan",
                          hint="use modelfunc.azure.flex.deploy_flex (or `modelfunc deploy --hosting-plan flex`)")
    return premium.deploy_to_slot(project, image, options, credential=credential, progress=progress,
                                  settings=settings, sleep=sleep, clock=clock)


BlobTest = Callable[[Project, SlotDeployment], Any]


def deploy(project: Project, image: str, options: DeployOptions, *, credential: TokenCredential,
           progress: Progress = quiet, settings: PipelineSettings | None = None, dry_run: bool = False,
           blob_test: BlobTest | None = None, sleep: Callable[[float], None] | None = None,
           clock: Callable[[], float] | None = None) -> DeployResult:
    """The whole Azure target: deploy to the slot, test it, swap when the test passed (see the module docstring).

    ``blob_test(project, deployment) -> TestReport`` replaces :func:`test_slot` (tests inject one). A failed
    test returns the result with ``passed`` False and production unchanged; the caller reports it.
    """
    if dry_run:
        return DeployResult(None, plan(project, image, options, credential=credential, progress=progress,
                                       settings=settings))
    if options.hosting_plan == "flex":
        deployment = flex.deploy_flex(project, options, credential=credential, progress=progress,
                                      settings=settings, sleep=sleep, clock=clock)
        report = None
        if options.run_test and deployment.changed:
            report = (blob_test or _default_test(credential, options, settings, progress))(project, deployment)
        return DeployResult(deployment, deployment.plan, report)
    deployment = deploy_to_slot(project, image, options, credential=credential, progress=progress,
                                settings=settings, sleep=sleep, clock=clock)
    if not deployment.changed:
        return DeployResult(deployment, deployment.plan)
    report = None
    if options.run_test:
        progress(f"==> test the sample on {deployment.slot_url}")
        report = (blob_test or _default_test(credential, options, settings, progress))(project, deployment)
        if not report.passed:
            progress(f"    the test failed: production stays on its previous image ({deployment.app_url})")
            return DeployResult(deployment, deployment.plan, report)
    if options.no_swap:
        progress(f"    --no-swap: {deployment.slot_url} runs {image}; production is unchanged")
        return DeployResult(deployment, deployment.plan, report)
    progress(f"==> swap {deployment.slot} into production")
    deployment = swap(deployment, credential=credential, progress=progress, settings=settings,
                      timeout=options.timeout)
    deployment.plan.changes.append(Change(f"swap {deployment.slot} -> production", "update"))
    return DeployResult(deployment, deployment.plan, report)


def _default_test(credential: TokenCredential, options: DeployOptions, settings: PipelineSettings | None,
                  progress: Progress) -> BlobTest:
    def run(project: Project, deployment: SlotDeployment) -> Any:
        return test_slot(project, deployment, credential=credential, timeout=options.test_timeout,
                         progress=progress, settings=settings)

    return run
