"""Flex Consumption: no containers and no slots — the rendered app is zip-deployed (OneDeploy).

The same app :func:`modelfunc.appgen.render` writes, with its dependencies vendored for the Functions
platform into ``.python_packages/lib/site-packages`` (pip, wheels for linux/amd64 and the project's
Python), zipped deterministically, and published to the scm endpoint's ``/api/publish`` (OneDeploy,
onedeploy.py) with the deploying credential, and the deployment followed on Kudu to its end (a 403 while the app's new
storage role propagates is retried). A blob trigger is switched to ``source=EventGrid`` (Flex Consumption
does not poll containers) and gets its Event Grid system topic and subscription, created once the app is
healthy and retried while Event Grid's validation handshake fails. Sources: facts.py ("zip deploy").

Read before write as everywhere: the package's SHA-256 is kept in the app setting
``MODELFUNC_PACKAGE_SHA256``; an unchanged package is not uploaded again.

Flex has no slots, so the test runs against production after the deploy: a failure is reported
(exit code 1) but production already runs the new package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.mgmt.eventgrid.models import (
    EventSubscription,
    EventSubscriptionFilter,
    SystemTopic,
    WebHookEventSubscriptionDestination,
)
from azure.mgmt.web.models import (
    FunctionAppConfig,
    FunctionsDeployment,
    FunctionsDeploymentStorage,
    FunctionsDeploymentStorageAuthentication,
    FunctionsRuntime,
    FunctionsScaleAndConcurrency,
    ManagedServiceIdentity,
    NameValuePair,
    Site,
    SiteConfig,
    StringDictionary,
)

from .. import bytecode
from ..appgen import render
from ..config import Project
from ..errors import DeployError
from ..progress import Progress, quiet
from ..runtime.modelfunc_runtime import DEPLOYMENT_SETTING
from . import facts, servicebus
from .clients import PipelineSettings, arm_call
from .clients import read_or_none as _get
from .onedeploy import backoff, publish, scm_host
from .options import FLEX_SKU, DeployOptions, resolve_names
from .results import ServiceState, SlotDeployment
from .verbs import Deployer, blob_url, host_url, make_run, trigger_settings

PACKAGE_SETTING = "MODELFUNC_PACKAGE_SHA256"
PACKAGE_CONTAINER = "app-package"
SITE_PACKAGES = ".python_packages/lib/site-packages"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)

Vendor = Callable[[Path, Path, str], None]  # (requirements.txt, site-packages dir, python version)


def eventgrid_project(project: Project) -> Project:
    """The project with its blob trigger switched to the EventGrid source (Flex does not poll)."""
    trigger = project.trigger.without_polling()
    if trigger is project.trigger:
        return project
    config = project.config.model_copy(update={"trigger": trigger})
    return dataclasses.replace(project, config=config)


def _pip_vendor(requirements: Path, dest: Path, python_version: str) -> None:
    """The app's lock (written beside requirements.txt), its installed tree copied into the package."""
    from .. import appenv

    try:
        lock = appenv.resolve(requirements, python_version=python_version)
    except appenv.NoWheel as e:
        raise DeployError(f"the dependencies cannot be vendored as wheels: {e.message}",
                          hint="Flex Consumption runs no build here: every requirement needs a linux/amd64 wheel"
                          ) from None
    appenv.write_lock(lock, requirements.parent)
    tree = appenv.site_tree(lock, file=requirements)
    shutil.copytree(tree, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "bin"))


def build_package(project: Project, work: Path, *, vendor: Vendor = _pip_vendor,
                  progress: Progress = quiet) -> tuple[Path, str]:
    """Render the app, vendor its dependencies and zip it (same inputs, same bytes); returns (zip, sha256)."""
    result = render(project, work / "build", progress=progress)
    app = result.app_dir
    (app / "local.settings.json").unlink(missing_ok=True)
    site_packages = app / SITE_PACKAGES
    site_packages.mkdir(parents=True)
    vendor(app / "requirements.txt", site_packages, project.config.python_version)
    compiled = _bytecode(site_packages, project.config.python_version, progress)
    archive = work / "app.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in app.rglob("*") if p.is_file() and ("__pycache__" not in p.parts
                                                                          or p in compiled)):
            info = zipfile.ZipInfo(path.relative_to(app).as_posix(), FIXED_DATE)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def _bytecode(site_packages: Path, python_version: str, progress: Progress) -> set[Path]:
    """The vendored packages' bytecode, as the image's dependencies layer carries it (bytecode.py): Flex runs the
    package mounted read-only, so nothing compiled at a start is kept. Returns the .pyc files written beside them."""
    compiler = bytecode.find_compiler(python_version)
    if compiler is None:
        progress(bytecode.missing(python_version))
        return set()
    sources = sorted(p.relative_to(site_packages).as_posix() for p in site_packages.rglob("*.py")
                     if p.is_file() and not p.is_symlink())
    compiled = bytecode.compile_or_warn(compiler, site_packages, sources, site_packages,
                                        f"/home/site/wwwroot/{SITE_PACKAGES}", progress=progress)
    return {path for _, path in compiled or []}


def deploy_flex(project: Project, options: DeployOptions, *, credential: TokenCredential,
                progress: Progress = quiet, settings: PipelineSettings | None = None, dry_run: bool = False,
                vendor: Vendor = _pip_vendor, sleep: Callable[[float], None] | None = None,
                clock: Callable[[], float] | None = None) -> SlotDeployment:
    """Provision a Flex Consumption app, zip-deploy the rendered app, wire the Event Grid blob trigger.

    Returns once the app lists its function (state Healthy); ``changed`` is False when the package was
    already deployed. There is no slot: test the result with :func:`modelfunc.azure.test_slot`.
    """
    settings = settings or PipelineSettings()
    project = eventgrid_project(project)
    names = resolve_names(project, options)
    run = make_run(credential, names, settings=settings, dry_run=dry_run, progress=progress,
                   timeout=options.timeout, sleep=sleep, clock=clock)
    d = Deployer(run, project, options, names, poll_interval=settings.polling_interval)
    web = d.c.web.web_apps
    suffix = d.c.cloud.storage_suffix
    try:
        trigger = project.trigger
        d.preflight()
        bus = bool(trigger.queues)  # a Service Bus namespace
        namespaces = servicebus.preflight(d) if bus else {}
        d.resource_group()
        d.storage_account(names.host_storage, [PACKAGE_CONTAINER, *trigger.host_containers])
        blob = trigger.has_storage  # trigger storage: the trigger's own account
        if blob:
            d.storage_account(names.trigger_storage, list(trigger.containers))
        d.plan_resource(*FLEX_SKU, "functionapp")
        hosts = {ns: servicebus.ensure_namespace(d, ns, current) for ns, current in namespaces.items()}
        what = f"function app {names.app}"
        desired = facts.host_storage_settings(names.host_storage, suffix)
        # The system-assigned identity: the account's (or namespace's) address alone names the connection.
        desired.update(trigger_settings(project, names.trigger_storage, suffix, hosts.get(names.bus_namespace)))
        cache = project.config.cache
        if cache is not None and cache.redis is not None and options.redis_connection_string:
            desired[cache.redis.connection] = options.redis_connection_string
        site = _get(web.get, d.rg, names.app, what=what)
        if site is None:
            envelope = Site(
                location=d.location, kind="functionapp,linux", tags=names.tags, https_only=True,
                server_farm_id=names.plan_id, identity=ManagedServiceIdentity(type="SystemAssigned"),
                # No ftpsState: Flex Consumption refuses it. The settings the host needs at its first start go
                # in the create (https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to).
                site_config=SiteConfig(min_tls_version="1.2", app_settings=[
                    NameValuePair(name=k, value=v) for k, v in sorted(desired.items())]),
                function_app_config=FunctionAppConfig(
                    deployment=FunctionsDeployment(storage=FunctionsDeploymentStorage(
                        type="blobContainer", value=f"{blob_url(names.host_storage, suffix)}/{PACKAGE_CONTAINER}",
                        authentication=FunctionsDeploymentStorageAuthentication(type="SystemAssignedIdentity"))),
                    runtime=FunctionsRuntime(name="python", version=project.config.python_version),
                    scale_and_concurrency=FunctionsScaleAndConcurrency(maximum_instance_count=40,
                                                                       instance_memory_mb=2048)))
            site = run.step(what, "create", lambda: run.wait(web.begin_create_or_update(d.rg, names.app, envelope),
                                                             what), detail="Flex Consumption, Python "
                                                                           f"{project.config.python_version}")
            created = True
        else:
            if "container" in (site.kind or "").lower():
                raise DeployError(f"{what} exists and runs a container", hint="deploy it with --hosting-plan "
                                  "premium-container, or choose another --app-name")
            run.step(what, "unchanged")
            created = False
        pid = site.identity.principal_id if site is not None and site.identity else None
        d.roles(names.app, pid, "ServicePrincipal",
                [(names.storage_id(names.host_storage), r) for r in facts.host_storage_roles(trigger)]
                + ([(names.storage_id(names.trigger_storage), r) for r in facts.BLOB_TRIGGER_ROLES] if blob else [])
                + (servicebus.app_roles(names) if bus else []))
        if blob and d.principal and d.principal.object_id:
            d.roles("the deploying principal (blob test)", d.principal.object_id, d.principal.principal_type,
                    [(names.storage_id(names.trigger_storage), facts.BLOB_TEST_ROLE)])
        if bus and d.principal and d.principal.object_id:
            d.roles("the deploying principal (service-bus-queue test)", d.principal.object_id,
                    d.principal.principal_type, servicebus.test_roles(names, names.bus_namespace))

        with tempfile.TemporaryDirectory(prefix="modelfunc-flex-") as tmp:
            progress("==> package the app with its dependencies (zip)")
            archive, digest = build_package(project, Path(tmp), vendor=vendor, progress=progress)
            current: dict[str, str] = dict(desired) if created else {}
            if not created:
                found = _get(web.list_application_settings, d.rg, names.app, what=f"app settings of {names.app}")
                current = dict((found.properties if found else None) or {})
            changed_package = current.get(PACKAGE_SETTING) != digest
            if changed_package:
                run.step(f"package of {names.app}", "update", lambda: publish(
                    archive, names.app, credential=credential, settings=settings, timeout=options.timeout,
                    host=scm_host(site), progress=progress, sleep=run.sleep, clock=run.clock,
                    poll_interval=settings.polling_interval),
                    detail=f"zip deploy, sha256 {digest[:12]}")
            else:
                run.step(f"package of {names.app}", "unchanged", detail=f"sha256 {digest[:12]}")
            desired[PACKAGE_SETTING] = digest
            desired[DEPLOYMENT_SETTING] = f"sha256:{digest}"  # written after the package: see premium.stamp
            merged, changed = run.settings_diff(names.app, current, desired)
            run.step(f"app settings of {names.app}", "update" if changed else "unchanged",
                     (lambda: web.update_application_settings(d.rg, names.app, StringDictionary(properties=merged)))
                     if changed else None)
        deployment = SlotDeployment(names.subscription_id, names.resource_group, names.app, None,
                                    f"sha256:{digest}", host_url(site), host_url(site),
                                    ServiceState.TRANSITIONING if changed_package else ServiceState.HEALTHY,
                                    changed_package, trigger_account_url=blob_url(names.trigger_storage, suffix)
                                    if blob else None, plan=run.plan, bus_namespace=hosts.get(names.bus_namespace),
                                    stamps_account_url=blob_url(names.host_storage, suffix) if bus else None)
        if dry_run:
            if trigger.pushed_by_event_grid:
                _event_subscription(d, project, site)  # planned only (its webhook needs the running app)
            return deployment
        if changed_package:
            deployment = d.wait_healthy(None, deployment=deployment)
        if trigger.pushed_by_event_grid:
            _event_subscription(d, project, site)
        return deployment
    finally:
        d.c.close()


def _event_subscription(d: Deployer, project: Project, site: Any) -> None:
    """The Event Grid system topic on the trigger storage and the subscription that calls the blob extension."""
    names, run = d.names, d.run
    eventgrid = d.c.eventgrid
    topic_name = f"{names.trigger_storage}-events"
    what = f"event grid topic {topic_name}"
    topic = _get(eventgrid.system_topics.get, d.rg, topic_name, what=what)
    if topic is None:
        body = SystemTopic(location=d.location, source=names.storage_id(names.trigger_storage),
                           topic_type="Microsoft.Storage.StorageAccounts", tags=names.tags)
        run.step(what, "create", lambda: run.wait(eventgrid.system_topics.begin_create_or_update(
            d.rg, topic_name, body), what))
    else:
        run.step(what, "unchanged")
    function = project.trigger.function_name
    container = project.trigger.input_container  # type: ignore[union-attr]
    sub_name = f"{names.app}-{function}"[:64]
    what = f"event subscription {sub_name}"
    base_url = f"https://{site.default_host_name if site is not None else names.app}/runtime/webhooks/blobs"
    subject = f"/blobServices/default/containers/{container}/"
    existing = None if topic is None else _get(eventgrid.system_topic_event_subscriptions.get, d.rg, topic_name,
                                               sub_name, what=what)
    if existing is not None:
        dest = existing.destination
        same = (getattr(dest, "endpoint_base_url", None) == base_url
                and existing.filter is not None and existing.filter.subject_begins_with == subject)
        if same:
            run.step(what, "unchanged")
            return

    def attempt() -> Any:
        with arm_call(f"read the blobs extension key of {names.app}"):
            keys = d.c.web.web_apps.list_host_keys(d.rg, names.app)
        key = (keys.system_keys or {}).get("blobs_extension")
        if not key:
            raise _NotYet(f"{names.app} has no blobs_extension key yet (the host has not indexed the blob trigger)")
        # The URL carries the key: it goes to Event Grid only, never to a log or the plan.
        url = f"{base_url}?functionName=Host.Functions.{function}&code={key}"
        body = EventSubscription(
            destination=WebHookEventSubscriptionDestination(endpoint_url=url),
            filter=EventSubscriptionFilter(subject_begins_with=subject,
                                           included_event_types=["Microsoft.Storage.BlobCreated"]),
            event_delivery_schema="EventGridSchema")
        try:
            return run.wait(eventgrid.system_topic_event_subscriptions.begin_create_or_update(
                d.rg, topic_name, sub_name, body), what)
        except (HttpResponseError, DeployError) as e:
            if _validation_failed(e):
                shown = (getattr(e, "message", None) or str(e)).strip().splitlines()[0]  # the SDK repeats it below
                raise _NotYet(f"Event Grid's validation handshake with {base_url} failed ({_redact(shown)})") from None
            raise

    def create() -> Any:
        """Once the app is healthy; retried while Event Grid cannot validate the webhook (facts.EVENTGRID_...)."""
        started = run.clock()
        bound = min(run.timeout, facts.WEBHOOK_VALIDATION_SECONDS)
        tries = 0
        while True:
            try:
                return attempt()
            except _NotYet as e:
                tries += 1
                wait = backoff(tries)
                if run.clock() - started + wait > bound:
                    raise DeployError(f"{what}: {e} — still after {run.clock() - started:.0f} s and {tries} "
                                      "attempt(s)", hint=f"the blob extension endpoint of {names.app} did not answer "
                                      "Event Grid; check the app runs and lists its blob function, then deploy "
                                      "again (https://learn.microsoft.com/azure/event-grid/"
                                      "troubleshoot-subscription-validation)") from None
                run.progress(f"    {what}: {e}; the app's blob extension endpoint may not be up yet: retry {tries} "
                             f"in {wait:.0f} s")
                run.sleep(wait)

    run.step(what, "create" if existing is None else "update", create, detail=f"BlobCreated in {container}/")


class _NotYet(Exception):
    """The webhook cannot be subscribed yet (no blobs_extension key, or Event Grid's validation failed)."""


def _text(e: Exception) -> str:
    """Everything an error says (message, ARM error code, response body): to recognise it, not to show it."""
    parts = [getattr(e, "message", None) or str(e)]
    error = getattr(e, "error", None)
    if error is not None:
        parts += [str(getattr(error, "code", "") or ""), str(getattr(error, "message", "") or "")]
    response = getattr(e, "response", None)
    if response is not None:
        try:
            parts.append(response.text())
        except Exception:  # noqa: BLE001 - a body that cannot be read adds nothing
            pass
    return " ".join(p for p in parts if p)


def _validation_failed(e: Exception) -> bool:
    text = _text(e).lower()
    return facts.EVENTGRID_VALIDATION_FAILED.lower() in text or "validation handshake" in text


def _redact(text: str) -> str:
    """A message as it may be shown: a webhook URL's key masked, one line, bounded."""
    return re.sub(r"(code=)[^&\s\"']+", r"\1***", " ".join(text.split()))[:400]
