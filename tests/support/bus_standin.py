"""A stand-in for a Functions host serving a Service Bus app, for the queue round-trip tests (no Service Bus
emulator exists). Run as ``python bus_standin.py APP_DIR``: it loads the generated app with modelfunc's local
loader (the real azure-functions library indexes its bindings) and, per JSON line on stdin
``{"message_id", "body", "deployment"}``, calls the function as the host would — a real
``azure.functions.servicebus.ServiceBusMessage`` carrying the message id, the deployment's id in the app
setting — and answers one JSON line: the output queue's message and each blob output with its path's
``{MessageId}`` binding expression resolved (what the host would write).
"""

from __future__ import annotations

import json
import os
import sys

from azure.functions.servicebus import ServiceBusMessage
from modelfunc.localhost import load_app
from modelfunc.localhost.blobs import Out
from modelfunc.runtime.modelfunc_runtime import DEPLOYMENT_SETTING


def main(app_dir: str) -> int:
    loaded = load_app(app_dir)
    (function,) = [f for f in loaded.functions.values() if f.trigger.type == "serviceBusTrigger"]
    print(json.dumps({"ready": True, "outputs": [{"type": b.type, **b.data} for b in function.outputs]}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        os.environ[DEPLOYMENT_SETTING] = request["deployment"]
        message = ServiceBusMessage(body=request["body"].encode(), message_id=request["message_id"],
                                    content_type="application/json", application_properties={}, user_properties={})
        outs = {b.name: Out() for b in function.outputs}
        try:
            function.user_function(**{function.trigger.name: message}, **outs)
        except Exception as e:  # noqa: BLE001 - the host would retry, then dead-letter it
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
            continue
        answer: dict = {"queue": None, "blobs": {}}
        for b in function.outputs:
            out = outs[b.name]
            if not out.is_set:
                continue
            value = out.value.decode() if isinstance(out.value, bytes) else out.value
            if b.type == "serviceBus":
                answer["queue"] = {"queue": b.data["queueName"], "body": value}
            elif b.type == "blob":
                answer["blobs"][b.data["path"].replace("{MessageId}", request["message_id"])] = value
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
