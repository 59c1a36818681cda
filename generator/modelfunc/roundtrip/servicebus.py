"""The Service Bus round trip. Locally (no emulator exists): invoke the function through the local host's admin
API and check its output binding. In Azure: the sample to the slot's input queue, the answer from its output queue.

In Azure, a Service Bus answer is a bare body (the Python library's output binding sends only str or bytes; see
azure/facts.py), so the runtime writes a stamp blob per message — ``modelfunc-stamps/messages/<message id>`` in
the app's host storage account — naming the deployment that answered and the answer's SHA-256. The test sends
the sample with a fresh message id, waits for that stamp, and takes the output message whose digest the stamp
names. An answer from any other deployment (a container still running the previous image) is set aside and the
sample sent again, as the blob and HTTP tests do.

The queues are reached with :class:`ServiceBusQueues` (azure-servicebus, by identity); tests pass another
:class:`Bus`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from ..config import Project
from ..errors import DeployError
from ..redact import redact
from ..runtime.modelfunc_runtime import STAMP_CONTAINER
from ..samples import load_expected, sample_text
from ..triggers import ServiceBusQueueTrigger
from .http import post
from .report import Progress, TestReport, answered_elsewhere, judge, while_role_applies

POLL_SECONDS = 1.0


def run_invoke_test(project: Project, host_url: str, function_name: str, *, timeout: float = 60.0) -> TestReport:
    """Invoke a Service Bus function through the local host's admin API and check its output message."""
    trigger = project.trigger
    assert isinstance(trigger, ServiceBusQueueTrigger)
    expected = load_expected(project)
    url = f"{host_url.rstrip('/')}/admin/functions/{function_name}"
    report = TestReport(False, "service-bus-queue", url, f"queue {trigger.input_queue} (invoked locally)",
                        f"queue {trigger.output_queue}", tolerance=project.config.samples.tolerance,
                        expected=expected)
    resp = post(report, url, timeout=timeout, json={"input": sample_text(project)})
    if resp is None:
        return report
    message = resp.json().get("outputs", {}).get(trigger.output_queue)
    if message is None:
        report.error = f"the function sent nothing to {trigger.output_queue!r}"
        return report
    if isinstance(message, dict):  # a message that is not UTF-8 text comes back in base64
        return judge(report, expected, base64.b64decode(message["base64"]))
    return judge(report, expected, message.encode("utf-8"))


class NotAuthorizedYet(Exception):
    """Service Bus refused the identity (a role the deploy granted moments ago is not applied yet)."""


class Bus(Protocol):
    """What the test needs of Service Bus: send one message, take what has arrived on a queue."""

    def send(self, queue: str, body: bytes, *, message_id: str, content_type: str) -> None:
        """Send one message; raises NotAuthorizedYet while the namespace refuses the identity."""

    def receive(self, queue: str, *, max_wait: float) -> list[bytes]:
        """The messages waiting on ``queue`` (settled: taken off it); waits up to ``max_wait`` s when none is."""

    def close(self) -> None: ...


class ServiceBusQueues:
    """A namespace's queues through azure-servicebus, signed in with ``credential`` (no key, no connection string)."""

    def __init__(self, fully_qualified_namespace: str, credential: Any) -> None:
        from azure.servicebus import ServiceBusClient

        self._client = ServiceBusClient(fully_qualified_namespace, credential)

    def send(self, queue: str, body: bytes, *, message_id: str, content_type: str) -> None:
        from azure.servicebus import ServiceBusMessage
        from azure.servicebus.exceptions import ServiceBusAuthorizationError

        try:
            with self._client.get_queue_sender(queue) as sender:
                sender.send_messages(ServiceBusMessage(body, message_id=message_id, content_type=content_type))
        except ServiceBusAuthorizationError as e:
            raise NotAuthorizedYet(redact(str(e).splitlines()[0]) if str(e) else type(e).__name__) from None

    def receive(self, queue: str, *, max_wait: float) -> list[bytes]:
        bodies = []
        with self._client.get_queue_receiver(queue, max_wait_time=max_wait) as receiver:
            for message in receiver.receive_messages(max_message_count=20, max_wait_time=max_wait):
                bodies.append(b"".join(message.body))
                receiver.complete_message(message)
        return bodies

    def close(self) -> None:
        self._client.close()


def stamp_name(message_id: str) -> str:
    """The stamp's blob name in STAMP_CONTAINER (MESSAGE_STAMP_PATH with the message id)."""
    return f"messages/{message_id}"


def _send(bus: Bus, queue: str, body: bytes, message_id: str, *, role_wait: float,
          progress: Progress | None) -> None:
    """Send the sample; while the namespace refuses the identity, try again for up to ``role_wait`` s."""
    while_role_applies(
        lambda: bus.send(queue, body, message_id=message_id, content_type="application/json"),
        lambda e: str(e) if isinstance(e, NotAuthorizedYet) else None, role_wait=role_wait, progress=progress,
        waiting="the namespace does not let this identity send yet",
        give_up=lambda reason: DeployError(
            f"Service Bus refused to take the sample on {queue} for {role_wait:.0f} s ({reason})",
            hint="the identity running the test needs Azure Service Bus Data Sender on the slot's namespace (a new "
                 "role assignment can take minutes to apply: deploy again)"))


def run_queue_test(project: Project, *, namespace: str, stamps: ContainerClient, bus: Bus | None = None,
                   credential: Any = None, deployment: str | None = None, timeout: float = 120.0,
                   progress: Progress | None = None, role_wait: float = 300.0) -> TestReport:
    """Send the sample to the input queue of ``namespace`` and judge the answer read from its output queue.

    ``stamps``: the host storage account's STAMP_CONTAINER. ``deployment``: only an answer stamped with it counts.
    A send refused while the test's role on the namespace is applied is tried again for up to ``role_wait`` s
    (before ``timeout`` starts).
    """
    trigger = project.trigger
    assert isinstance(trigger, ServiceBusQueueTrigger)
    expected = load_expected(project)
    report = TestReport(False, "service-bus-queue", f"{namespace}/{trigger.input_queue}",
                        str(project.sample_input.relative_to(project.root)), f"queue {trigger.output_queue}",
                        tolerance=project.config.samples.tolerance, expected=expected)
    body = project.sample_input.read_bytes()
    bus = bus or ServiceBusQueues(namespace, credential)
    answers: dict[str, bytes] = {}  # sha256 -> body, every answer read from the output queue so far
    started: float | None = None
    try:
        while True:
            message_id = uuid.uuid4().hex
            _send(bus, trigger.input_queue, body, message_id, role_wait=role_wait, progress=progress)
            sent = time.perf_counter()
            started = sent if started is None else started
            if progress:
                progress(f"  sent the sample to {namespace}/{trigger.input_queue} (message {message_id})")
            stamp = _wait_for_stamp(stamps, message_id, bus, trigger.output_queue, answers,
                                    deadline=started + timeout)
            if isinstance(stamp, str):
                report.error = (f"no answer to message {message_id} within {timeout:.0f} s: nothing stamped "
                                f"{STAMP_CONTAINER}/{stamp_name(message_id)} (is the function listening on "
                                f"{trigger.input_queue}? read the app's log)" + (f"; last error: {stamp}" if stamp
                                                                                  else ""))
                return report
            report.deployment = str(stamp.get("deployment") or "") or None
            if not deployment or report.deployment == deployment:
                wanted = str(stamp.get("answer_sha256") or "")
                answer = _wait_for_answer(bus, trigger.output_queue, answers, wanted, deadline=started + timeout)
                report.latency_ms = (time.perf_counter() - sent) * 1000
                if answer is None:
                    report.error = (f"message {message_id} was answered (stamped) but its answer never reached "
                                    f"{trigger.output_queue} within {timeout:.0f} s")
                    return report
                return judge(report, expected, answer)
            if answered_elsewhere(report, deployment, started=started, timeout=timeout, progress=progress,
                                  then="sending the sample again"):
                return report
    finally:
        bus.close()


def _wait_for_stamp(stamps: ContainerClient, message_id: str, bus: Bus, output_queue: str,
                    answers: dict[str, bytes], *, deadline: float) -> dict[str, Any] | str:
    """The stamp of ``message_id``, or (none by the deadline) the last error reading it ("" when there was none)."""
    blob = stamps.get_blob_client(stamp_name(message_id))
    last_error = ""
    while True:
        for body in bus.receive(output_queue, max_wait=POLL_SECONDS):  # drain answers while waiting
            answers[hashlib.sha256(body).hexdigest()] = body
        try:
            data = json.loads(blob.download_blob().readall())
        except ResourceNotFoundError:
            data = None
        except AzureError as e:  # e.g. 403 while the test's role on the stamps is still being applied
            data, last_error = None, redact(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        except ValueError:
            data = None
        if isinstance(data, dict):
            try:
                blob.delete_blob()
            except AzureError:
                pass  # a stamp left behind is harmless: the next test uses a new message id
            return data
        if time.perf_counter() >= deadline:
            return last_error


def _wait_for_answer(bus: Bus, output_queue: str, answers: dict[str, bytes], wanted: str, *,
                     deadline: float) -> bytes | None:
    while wanted not in answers:
        if time.perf_counter() >= deadline:
            return None
        for body in bus.receive(output_queue, max_wait=POLL_SECONDS):
            answers[hashlib.sha256(body).hexdigest()] = body
    return answers[wanted]
