"""The blob and Service Bus paths of the runtime, driven as the Python worker drives them, without a host.

    python triggers.py SCRIPT_NAME REPO RESULT_JSON

(forked from the modelfunc fork server, zygote.py, beside the script's two servers). It loads REPO/score.py with the
runtime (``EntryScript``, what the generated function_app.py loads), and pushes the body of every request of
``catalogue.trigger_requests`` through

* ``EntryScript.handle_blob``: an ``azure.functions.blob.InputStream`` made by the library's own ``BlobConverter``
  from what the host sends for a blob trigger (the blob's bytes; its name ``input/<request id>.json``, URI and
  properties, the content type among them, as trigger metadata), and two output bindings;
* ``EntryScript.handle_message``: an ``azure.functions.ServiceBusMessage`` made by the library's
  ``ServiceBusMessageInConverter`` from the message's bytes and its trigger metadata (message id, content type), and
  the output queue's binding.

The output bindings are ``azure.functions.Out`` as the worker implements it (azure_functions_worker.bindings.out.Out:
set/get of one value), and what was set is encoded by the binding's own converter (``BlobConverter.encode``,
``ServiceBusMessageOutConverter.encode``): the bytes the host writes to the blob or sends to the queue. An exception
out of the function is recorded as the worker reports it to the host (type and message): for a message, the host then
abandons it (retried, then dead-lettered); a blob function must not raise (it writes an error record instead).

RESULT_JSON gets, per trigger and request id: ``{"outputs": {binding: [datum type, base64 bytes]}, "raised": ...}``.
"""

from __future__ import annotations

import base64
import json
import sys
import traceback
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[2]  # tests/, so that `support` imports
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import azure.functions as func  # noqa: E402
from azure.functions import meta  # noqa: E402
from azure.functions.blob import BlobConverter  # noqa: E402
from azure.functions.servicebus import ServiceBusMessageInConverter, ServiceBusMessageOutConverter  # noqa: E402

from support.conformance.catalogue import BY_NAME, Req, blob_name, trigger_requests  # noqa: E402

OCTET_STREAM = "application/octet-stream"  # what Azure Storage gives a blob uploaded without a content type


class Out(func.Out):
    """azure_functions_worker.bindings.out.Out: what the worker passes for an output binding."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


def blob_input(req: Req) -> func.InputStream:
    """What the worker makes of a blob trigger's invocation: the bytes, and the trigger metadata the host sends
    (BlobTrigger: container/name; Uri; Properties: the blob's BlobProperties, ContentType among them)."""
    name = blob_name(req)
    body = req.body or b""
    properties = {"ContentType": req.ctype or OCTET_STREAM, "ContentLength": len(body), "BlobType": "BlockBlob",
                  "ETag": '"0x8DC0000000000001"'}
    metadata = {"BlobTrigger": meta.Datum(name, "string"),
                "Uri": meta.Datum(f"http://127.0.0.1:10000/devstoreaccount1/{name}", "string"),
                "Properties": meta.Datum(json.dumps(properties), "json"),
                "Metadata": meta.Datum("{}", "json")}
    return BlobConverter.decode(meta.Datum(body, "bytes"), trigger_metadata=metadata)


def message_input(req: Req) -> func.ServiceBusMessage:
    """What the worker makes of a Service Bus trigger's invocation (one message): its bytes and trigger metadata."""
    metadata = {"MessageId": meta.Datum(f"conformance-{req.id}", "string"),
                "DeliveryCount": meta.Datum(1, "int"),
                "UserProperties": meta.Datum("{}", "json"),
                "ApplicationProperties": meta.Datum("{}", "json")}
    if req.ctype is not None:
        metadata["ContentType"] = meta.Datum(req.ctype, "string")
    return ServiceBusMessageInConverter.decode(meta.Datum(req.body or b"", "bytes"), trigger_metadata=metadata)


def _encoded(converter: Any, pytype: type, out: Out) -> list[str] | None:
    """The bytes the host gets for an output binding (None: not set, the worker sends nothing)."""
    value = out.get()
    if value is None:
        return None
    datum = converter.encode(value, expected_type=pytype)
    data = datum.value.encode("utf-8") if datum.type == "string" else datum.value
    return [datum.type, base64.b64encode(data).decode()]


def call(trigger: str, entry: Any, req: Req) -> dict[str, Any]:
    if trigger == "blob":
        outs = {"output": Out(), "error": Out(), "stamp": Out()}
        invoke = lambda: entry.handle_blob(blob_input(req), outs["output"], outs["error"], outs["stamp"])  # noqa: E731
        types = {name: (BlobConverter, bytes) for name in outs}
    else:
        outs = {"output": Out(), "stamp": Out()}
        invoke = lambda: entry.handle_message(message_input(req), outs["output"], outs["stamp"])  # noqa: E731
        types = {"output": (ServiceBusMessageOutConverter, bytes), "stamp": (BlobConverter, bytes)}  # func.Out[bytes]
    raised = None
    try:
        invoke()
    except Exception as ex:  # noqa: BLE001 - what the worker reports to the host
        raised = f"{type(ex).__name__}: {ex}"
        print(f"--- {trigger} {req.id} raised:\n{traceback.format_exc()}", file=sys.stderr)
        outs = {name: Out() for name in outs}  # the host writes no output of a failed invocation
    outputs = {name: _encoded(*types[name], out) for name, out in outs.items()}
    return {"outputs": {k: v for k, v in outputs.items() if v is not None}, "raised": raised}


def main(name: str, repo: str, result_path: str) -> int:
    from modelfunc.runtime.modelfunc_runtime import EntryScript

    script = BY_NAME[name]
    result: dict[str, Any] = {"blob": {}, "message": {}}
    entry = EntryScript(Path(repo) / "score.py", model_dir=Path(repo) / "model")
    entry.wait_ready()
    for req in trigger_requests(script):
        for trigger in ("blob", "message"):
            result[trigger][req.id] = call(trigger, entry, req)
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.rename(result_path)  # whole, or not there
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
