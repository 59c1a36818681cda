"""The triggers modelfunc.yaml can name, one class per binding family (as the Functions Python library keeps one
module per binding), each with the facts about it that the rest of modelfunc asks for instead of testing its type:
the function's name, what it needs in the app (host.json, local settings, the stamp of each answer), the storage
containers and Service Bus queues it reads and writes, the app settings that connect it by identity in Azure and
stay with a slot on a swap, and how it is reached (HTTP, storage, a queue).

No Azure SDK here: the Azure side (roles, clients) reads these facts (azure/facts.py has the roles' sources).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator

from .blobpath import BlobPath, BlobPathError
from .runtime.modelfunc_runtime import MESSAGE_STAMP_CONNECTION, MESSAGE_STAMP_PATH, STAMP_CONTAINER
from .sections import Strict, setting_name

# The route of an HTTP app's OpenAPI document (its second function, beside the scoring one: openapi.py).
OPENAPI_ROUTE = "swagger.json"
# An identity-based Service Bus connection: "<CONNECTION>__fullyQualifiedNamespace" = "<namespace>.servicebus.
# windows.net" (https://learn.microsoft.com/azure/azure-functions/functions-bindings-service-bus#identity-based-
# connections); the host name is read from the namespace's ARM answer (serviceBusEndpoint), never built.
FULLY_QUALIFIED_NAMESPACE_SUFFIX = "__fullyQualifiedNamespace"
# An identity-based blob trigger connection names the account's blob and queue services (the queue: poison blobs):
# "<CONNECTION>__blobServiceUri" and "__queueServiceUri" (functions-bindings-storage-blob#identity-based-connections).
BLOB_CONNECTION_SERVICES = ("blob", "queue")

ServiceUrl = Callable[[str], str]  # a storage service ("blob", "queue") → its URL on the trigger's account


def _parse_path(value: str) -> BlobPath:
    try:
        return BlobPath.parse(value)
    except BlobPathError as e:
        raise ValueError(str(e)) from None


def _may_match(src: BlobPath, out: BlobPath) -> bool:
    """Whether some blob written by ``out`` could match ``src`` (probing with values built from its literals)."""
    literals = [part for part in re.split(r"\{[A-Za-z_][A-Za-z0-9_]*\}", src.blob_pattern) if part]
    probes = {"x", "ab", "aab", *literals, *(f"x{lit}" for lit in literals), *(f"{lit}x" for lit in literals),
              *(f"{a}x{b}" for a in literals for b in literals)}
    return any(src.match(out.format(dict.fromkeys(out.placeholders, probe))) for probe in probes)


class _TriggerFacts(Strict):
    """What every trigger answers; each class below says what differs for it."""

    function_name: ClassVar[str]  # the scoring function's name in the app (and in Azure's function list)
    function_template: ClassVar[str]  # its function's Jinja template, under templates/ (function_app.py.j2 includes it)
    serves_http: ClassVar[bool] = False  # answers at /api/<route>: methods checked, an OpenAPI document beside it
    # It listens to a storage account of its own: in Azure one per slot; locally Azurite or the connection string given.
    has_storage: ClassVar[bool] = False
    host_storage_queues: ClassVar[bool] = False  # keeps receipts and queues in the host's storage (AzureWebJobsStorage)
    host_containers: ClassVar[tuple[str, ...]] = ()  # containers it needs in the host's storage account
    sample_as_text: ClassVar[bool] = False  # its sample reaches the local host as text (the admin API's "input")

    def host_extensions(self) -> dict[str, Any]:
        """Its section of host.json's ``extensions``."""
        raise NotImplementedError

    @property
    def containers(self) -> tuple[str, ...]:
        """The containers of its own storage account it reads and writes (with the answers' stamps)."""
        return ()

    @property
    def queues(self) -> tuple[str, ...]:
        """The Service Bus queues it reads and writes (none: it needs no namespace)."""
        return ()

    @property
    def slot_settings(self) -> tuple[str, ...]:
        """The app settings that point its connection at a service: each slot keeps its own on a swap (sticky)."""
        return ()

    def connection_settings(self, service_url: ServiceUrl, namespace: str) -> dict[str, str]:
        """The values of :attr:`slot_settings` (by identity): ``service_url`` gives a storage service's URL on the
        trigger's account, ``namespace`` the Service Bus namespace's host name."""
        return {}

    def local_settings(self) -> dict[str, str]:
        """Its values in local.settings.json."""
        return {}

    def without_polling(self) -> Any:
        """This trigger with nothing that polls (Flex Consumption polls no containers)."""
        return self

    # Constants for most triggers; the blob trigger computes them from its fields (properties of the same names).
    polls: ClassVar[bool] = False  # it finds its input by polling (the Azure test waits for the documented latency)
    pushed_by_event_grid: ClassVar[bool] = False  # Event Grid pushes its input (the app needs an event subscription)
    # Where the runtime stamps each answer with the deployment that wrote it (None: in the answer itself), and the
    # connection the stamp is written with.
    stamp_path: ClassVar[str | None] = None
    stamp_connection: ClassVar[str | None] = None


class HttpTrigger(_TriggerFacts):
    type: Literal["http"]
    auth_level: Literal["anonymous", "function", "admin"] = "function"
    route: str = "score"
    methods: tuple[Literal["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], ...] = ("GET", "POST")

    function_name: ClassVar[str] = "score"
    function_template: ClassVar[str] = "functions/http.py.j2"
    serves_http: ClassVar[bool] = True

    @property
    def connection(self) -> None:
        """An HTTP trigger needs no connection setting."""
        return None

    def url(self, base_url: str) -> str:
        """The scoring function's URL on a host at ``base_url``."""
        return f"{base_url.rstrip('/')}/api/{self.route}"

    def host_extensions(self) -> dict[str, Any]:
        return {"http": {"routePrefix": "api"}}

    @field_validator("route")
    @classmethod
    def _route(cls, v: str) -> str:
        if not v or v.startswith("/") or v.endswith("/") or any(c.isspace() or c in "?#{}" for c in v):
            raise ValueError(
                f"{v!r} is not a valid route: use a path without leading/trailing '/', spaces, "
                "'?', '#' or '{}', e.g. 'score' (served at /api/score)"
            )
        bad = next((seg for seg in v.split("/") if not seg.strip(".")), None)
        if bad is not None:
            what = "an empty segment ('//')" if not bad else f"the segment {bad!r}"
            raise ValueError(
                f"{v!r} is not a valid route: it has {what}, which URLs resolve away (/api/{v} is not where a "
                "client's request would arrive); use names, e.g. 'score' or 'models/score'"
            )
        if v.lower() == OPENAPI_ROUTE:  # the Functions host matches routes without regard to case
            raise ValueError(
                f"{v!r} is the route of the app's OpenAPI document (GET /api/{OPENAPI_ROUTE}, which modelfunc adds "
                "to every HTTP app, as Azure ML serves /swagger.json): use another route for run(), e.g. 'score'"
            )
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one HTTP method is needed, e.g. [POST]")
        return tuple(dict.fromkeys(v))


class BlobTrigger(_TriggerFacts):
    type: Literal["blob"]
    input_path: str = "input/{blobname}.json"
    output_path: str = "output/{blobname}_out.json"
    # Where a blob that fails to score leaves its error record (instead of vanishing after retries).
    error_path: str = "errors/{blobname}_error.json"
    connection: str = "TriggerConnectionString"
    source: Literal["polling", "EventGrid"] = "polling"

    function_name: ClassVar[str] = "score_blob"
    function_template: ClassVar[str] = "functions/blob.py.j2"
    has_storage: ClassVar[bool] = True
    host_storage_queues: ClassVar[bool] = True

    def host_extensions(self) -> dict[str, Any]:
        # Failures become error records (the function never raises for a bad blob), so a blob that
        # still fails is a host problem: give up on it after 3 tries instead of the default 5.
        return {"blobs": {"maxDegreeOfParallelism": 4, "poisonBlobThreshold": 3}}

    @property
    def containers(self) -> tuple[str, ...]:
        paths = (self.input_path, self.output_path, self.error_path)
        return (*dict.fromkeys(BlobPath.parse(p).container for p in paths), STAMP_CONTAINER)

    @property
    def input_container(self) -> str:
        return BlobPath.parse(self.input_path).container

    @property
    def slot_settings(self) -> tuple[str, ...]:
        return tuple(f"{self.connection}__{service}ServiceUri" for service in BLOB_CONNECTION_SERVICES)

    def connection_settings(self, service_url: ServiceUrl, namespace: str) -> dict[str, str]:
        return {f"{self.connection}__{service}ServiceUri": service_url(service) for service in BLOB_CONNECTION_SERVICES}

    def local_settings(self) -> dict[str, str]:
        return {self.connection: "UseDevelopmentStorage=true"}

    @property
    def polls(self) -> bool:
        return self.source != "EventGrid"

    @property
    def pushed_by_event_grid(self) -> bool:
        return self.source == "EventGrid"

    def without_polling(self) -> BlobTrigger:
        return self if self.pushed_by_event_grid else self.model_copy(update={"source": "EventGrid"})

    @property
    def stamp_path(self) -> str:
        """Beside the answer: ``STAMP_CONTAINER/<output path>``, on the trigger's account."""
        return f"{STAMP_CONTAINER}/{self.output_path}"

    @property
    def stamp_connection(self) -> str:
        return self.connection

    @field_validator("connection")
    @classmethod
    def _conn(cls, v: str) -> str:
        return setting_name(v)

    @field_validator("input_path")
    @classmethod
    def _input(cls, v: str) -> str:
        path = _parse_path(v)
        if "blobname" not in path.placeholders:
            raise ValueError(f"{v!r} must contain {{blobname}}, e.g. 'input/{{blobname}}.json'")
        return v

    @field_validator("output_path", "error_path")
    @classmethod
    def _output(cls, v: str, info: ValidationInfo) -> str:
        out = _parse_path(v)
        if "input_path" not in info.data:
            return v  # input_path itself is invalid; that error is reported
        src = BlobPath.parse(info.data["input_path"])
        unknown = [p for p in out.placeholders if p not in src.placeholders]
        if unknown:
            raise ValueError(
                f"{v!r} uses {{{unknown[0]}}}, which input_path does not define; "
                f"available: {', '.join('{' + p + '}' for p in src.placeholders)}"
            )
        if out.container == src.container and _may_match(src, out):
            raise ValueError(
                f"{v!r} can match input_path {src.pattern!r}: its blobs would trigger the function again; "
                "write them to another container, e.g. 'output/{blobname}_out.json'"
            )
        if info.field_name == "error_path" and v == info.data.get("output_path"):
            raise ValueError(f"{v!r} is also the output_path; error records need their own path")
        return v


class ServiceBusQueueTrigger(_TriggerFacts):
    type: Literal["service-bus-queue"]
    input_queue: str
    output_queue: str
    connection: str = "ServiceBusConnection"

    function_name: ClassVar[str] = "score_message"
    function_template: ClassVar[str] = "functions/service_bus_queue.py.j2"
    host_containers: ClassVar[tuple[str, ...]] = (STAMP_CONTAINER,)
    sample_as_text: ClassVar[bool] = True
    # By the input message's id, in the host storage account (an answer message cannot carry it).
    stamp_path: ClassVar[str] = MESSAGE_STAMP_PATH
    stamp_connection: ClassVar[str] = MESSAGE_STAMP_CONNECTION

    def host_extensions(self) -> dict[str, Any]:
        return {"serviceBus": {"prefetchCount": 0, "messageHandlerOptions": {
            "autoComplete": True, "maxConcurrentCalls": 4}}}

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.input_queue, self.output_queue)))

    @property
    def slot_settings(self) -> tuple[str, ...]:
        return (f"{self.connection}{FULLY_QUALIFIED_NAMESPACE_SUFFIX}",)

    def connection_settings(self, service_url: ServiceUrl, namespace: str) -> dict[str, str]:
        return {f"{self.connection}{FULLY_QUALIFIED_NAMESPACE_SUFFIX}": namespace}

    def local_settings(self) -> dict[str, str]:
        return {self.connection: ""}

    @field_validator("connection")
    @classmethod
    def _conn(cls, v: str) -> str:
        return setting_name(v)

    @field_validator("input_queue", "output_queue")
    @classmethod
    def _queue(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-/]{0,259}", v or "") or v.endswith(("/", ".")):
            raise ValueError(
                f"{v!r} is not a valid Service Bus queue name: 1-260 letters, digits, '.', '-', '_', '/', "
                "starting with a letter or digit, e.g. 'scoring-requests'"
            )
        return v

    @field_validator("output_queue")
    @classmethod
    def _distinct(cls, v: str, info: ValidationInfo) -> str:
        if v.lower() == str(info.data.get("input_queue", "")).lower():
            raise ValueError(f"{v!r} is also the input_queue: every result would be scored again; use another queue")
        return v


TRIGGER_CLASSES = (HttpTrigger, BlobTrigger, ServiceBusQueueTrigger)
AnyTrigger = HttpTrigger | BlobTrigger | ServiceBusQueueTrigger
Trigger = Annotated[AnyTrigger, Field(discriminator="type")]
# The trigger list, as modelfunc.yaml spells it: ("http", "blob", "service-bus-queue").
TRIGGER_TYPES: tuple[str, ...] = tuple(get_args(cls.model_fields["type"].annotation)[0] for cls in TRIGGER_CLASSES)
BY_TYPE: dict[str, type[AnyTrigger]] = dict(zip(TRIGGER_TYPES, TRIGGER_CLASSES, strict=True))
FUNCTION_NAMES = {name: cls.function_name for name, cls in BY_TYPE.items()}
