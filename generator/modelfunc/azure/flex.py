"""Flex Consumption: no containers and no slots — the rendered app is zip-deployed (OneDeploy).

The same app :func:`modelfunc.appgen.render` writes, with its dependencies vendored for the Functions
platform into ``.python_packages/lib/site-packages`` (pip, wheels for linux/amd64 and the project's
Python), zipped deterministically, and published to the scm endpoint's ``/api/publish`` (OneDeploy)
with the deploying credential. A blob trigger is switched to ``source=EventGrid`` (Flex Consumption
does not poll containers) and gets its Event Grid system topic and subscription.

Read before write as everywhere: the package's SHA-256 is kept in the app setting
``MODELFUNC_PACKAGE_SHA256``; an unchanged package is not uploaded again.

Flex has no slots, so the test runs against production after the deploy: a failure is reported
(exit code 1) but production already runs the new package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
from azure.core.rest import HttpRequest
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

from ..appgen import FUNCTION_NAMES, render
from ..blobpath import BlobPath
from ..config import Project
from ..errors import DeployError
from . import credentials, facts
from .clients import PipelineSettings, arm_call
from .deploy import (
    ServiceState,
    SlotDeployment,
    _blob_url,
    _containers,
    _Deployer,
    _get,
    _host_url,
    _make_run,
    _queue_url,
)
from .engine import Progress, _quiet
from .options import DeployOptions, resolve_names

PACKAGE_SETTING = "MODELFUNC_PACKAGE_SHA256"
PACKAGE_CONTAINER = "app-package"
SITE_PACKAGES = ".python_packages/lib/site-packages"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)

Vendor = Callable[[Path, Path, str], None]  # (requirements.txt, site-packages dir, python version)


def eventgrid_project(project: Project) -> Project:
    """The project with its blob trigger switched to the EventGrid source (Flex does not poll)."""
    trigger = project.trigger
    if trigger.type != "blob" or trigger.source == "EventGrid":
        return project
    config = project.config.model_copy(update={"trigger": trigger.model_copy(update={"source": "EventGrid"})})
    return dataclasses.replace(project, config=config)


def _pip_vendor(requirements: Path, dest: Path, python_version: str) -> None:
    from ..image import resolve_dependencies

    deps = resolve_dependencies(requirements, dest, python_version=python_version)
    if deps.site_packages is None:
        raise DeployError(f"the dependencies cannot be vendored as wheels: {deps.fallback_reason}",
                          hint="Flex Consumption runs no build here: every requirement needs a linux/amd64 wheel")


def build_package(project: Project, work: Path, *, vendor: Vendor = _pip_vendor,
                  progress: Progress = _quiet) -> tuple[Path, str]:
    """Render the app, vendor its dependencies and zip it (same inputs, same bytes); returns (zip, sha256)."""
    result = render(project, work / "build", progress=progress)
    app = result.app_dir
    (app / "local.settings.json").unlink(missing_ok=True)
    site_packages = app / SITE_PACKAGES
    site_packages.mkdir(parents=True)
    vendor(app / "requirements.txt", site_packages, project.config.python_version)
    archive = work / "app.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in app.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            info = zipfile.ZipInfo(path.relative_to(app).as_posix(), FIXED_DATE)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def scm_host(site: Any) -> str:
    """The app's deployment (Kudu) host as ARM names it (``hostNameSslStates`` of type Repository), never built
    from the app name: Azure shortens long names, and other clouds have other suffixes."""
    for state in getattr(site, "host_name_ssl_states", None) or []:
        if str(getattr(state, "host_type", "") or "").lower() == "repository" and state.name:
            return state.name
    host = site.default_host_name  # <app>.<suffix>: the deployment host is <app>.scm.<suffix>
    first, _, rest = host.partition(".")
    return f"{first}.scm.{rest}"


def publish(archive: Path, app_name: str, *, credential: TokenCredential, settings: PipelineSettings,
            timeout: float, host: str) -> None:
    """OneDeploy: POST the zip to https://<scm host>/api/publish (azure-core pipeline)."""
    retry = RetryPolicy(retry_total=settings.retry_total, retry_backoff_factor=settings.retry_backoff_factor,
                        retry_backoff_max=settings.retry_backoff_max)
    base = f"https://{host}"
    scope = settings.cloud.arm_scope if settings.cloud is not None else credentials.ARM_SCOPE
    client = PipelineClient(base, policies=[retry, BearerTokenCredentialPolicy(credential, scope)],
                            **({"transport": settings.transport} if settings.transport is not None else {}))
    request = HttpRequest("POST", f"{base}/api/publish", params={"type": "zip", "RemoteBuild": "false"},
                          headers={"Content-Type": "application/zip"}, content=archive.read_bytes())
    response = client.send_request(request, connection_timeout=30, read_timeout=timeout)
    if response.status_code not in (200, 202):
        raise DeployError(f"the zip deploy to {app_name} was answered {response.status_code}",
                          hint="the signed-in principal needs Website Contributor (or Contributor) on the app")


def deploy_flex(project: Project, options: DeployOptions, *, credential: TokenCredential,
                progress: Progress = _quiet, settings: PipelineSettings | None = None, dry_run: bool = False,
                vendor: Vendor = _pip_vendor, sleep: Callable[[float], None] | None = None,
                clock: Callable[[], float] | None = None) -> SlotDeployment:
    """Provision a Flex Consumption app, zip-deploy the rendered app, wire the Event Grid blob trigger.

    Returns once the app lists its function (state Healthy); ``changed`` is False when the package was
    already deployed. There is no slot: test the result with :func:`modelfunc.azure.test_slot`.
    """
    settings = settings or PipelineSettings()
    project = eventgrid_project(project)
    names = resolve_names(project, options)
    run = _make_run(credential, names, settings=settings, dry_run=dry_run, progress=progress,
                    timeout=options.timeout, sleep=sleep, clock=clock)
    d = _Deployer(run, project, None, options, names, poll_interval=settings.polling_interval)  # type: ignore[arg-type]
    web = d.c.web.web_apps
    suffix = d.c.cloud.storage_suffix
    try:
        d.preflight()
        d.resource_group()
        d.storage_account(names.host_storage, [PACKAGE_CONTAINER])
        d.storage_account(names.trigger_storage, _containers(project))
        d.plan_resource()
        what = f"function app {names.app}"
        blob = project.trigger.type == "blob"
        trigger = project.trigger
        desired = {"AzureWebJobsStorage__accountName": names.host_storage}
        if blob:
            desired[f"{trigger.connection}__blobServiceUri"] = _blob_url(names.trigger_storage, suffix)
            desired[f"{trigger.connection}__queueServiceUri"] = _queue_url(names.trigger_storage, suffix)
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
                        type="blobContainer", value=f"{_blob_url(names.host_storage, suffix)}/{PACKAGE_CONTAINER}",
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
                [(names.storage_id(names.host_storage), r) for r in facts.host_storage_roles(trigger.type)]
                + ([(names.storage_id(names.trigger_storage), r) for r in facts.BLOB_TRIGGER_ROLES] if blob else []))
        if blob and d.principal and d.principal.object_id:
            d.roles("the deploying principal (blob test)", d.principal.object_id, d.principal.principal_type,
                    [(names.storage_id(names.trigger_storage), facts.BLOB_TEST_ROLE)])

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
                    host=scm_host(site)),
                    detail=f"zip deploy, sha256 {digest[:12]}")
            else:
                run.step(f"package of {names.app}", "unchanged", detail=f"sha256 {digest[:12]}")
            desired[PACKAGE_SETTING] = digest
            merged, changed = run.settings_diff(names.app, current, desired)
            run.step(f"app settings of {names.app}", "update" if changed else "unchanged",
                     (lambda: web.update_application_settings(d.rg, names.app, StringDictionary(properties=merged)))
                     if changed else None)
        deployment = SlotDeployment(names.subscription_id, names.resource_group, names.app, None,
                                    f"sha256:{digest}", _host_url(site), _host_url(site),
                                    ServiceState.TRANSITIONING if changed_package else ServiceState.HEALTHY,
                                    changed_package, trigger_account_url=_blob_url(names.trigger_storage, suffix)
                                    if blob else None, plan=run.plan)
        if dry_run:
            if blob:
                _event_subscription(d, project, site)  # planned only (its webhook needs the running app)
            return deployment
        if changed_package:
            deployment = d.wait_healthy(None, deployment=deployment)
        if blob:
            _event_subscription(d, project, site)
        return deployment
    finally:
        d.c.close()


def _event_subscription(d: _Deployer, project: Project, site: Any) -> None:
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
    function = FUNCTION_NAMES["blob"]
    container = BlobPath.parse(project.trigger.input_path).container  # type: ignore[union-attr]
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

    def create() -> Any:
        with arm_call(f"read the blobs extension key of {names.app}"):
            keys = d.c.web.web_apps.list_host_keys(d.rg, names.app)
        key = (keys.system_keys or {}).get("blobs_extension")
        if not key:
            raise DeployError(f"{names.app} has no blobs_extension key yet (the host has not indexed the blob "
                              "trigger)", hint="deploy again in a minute")
        # The URL carries the key: it goes to Event Grid only, never to a log or the plan.
        url = f"{base_url}?functionName=Host.Functions.{function}&code={key}"
        body = EventSubscription(
            destination=WebHookEventSubscriptionDestination(endpoint_url=url),
            filter=EventSubscriptionFilter(subject_begins_with=subject,
                                           included_event_types=["Microsoft.Storage.BlobCreated"]),
            event_delivery_schema="EventGridSchema")
        return run.wait(eventgrid.system_topic_event_subscriptions.begin_create_or_update(
            d.rg, topic_name, sub_name, body), what)

    run.step(what, "create" if existing is None else "update", create, detail=f"BlobCreated in {container}/")
