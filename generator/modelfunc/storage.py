"""One way to open a storage account, shared by the local host and the round-trip test.

Every connection string opened here has its secrets registered with the redactor (``redact.py``), so whatever
modelfunc prints about the account afterwards — an endpoint, an error — shows no key and no SAS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from email.utils import formatdate
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
from azure.storage.blob import BlobServiceClient, ExponentialRetry

from .errors import StorageError
from .redact import redact, register

# The emulator's development account, as UseDevelopmentStorage=true names it (public; not a secret).
_DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_QUEUE_API_VERSION = "2020-10-02"


def blob_service(connection_string: str, *, transport: object = None) -> BlobServiceClient:
    """A client for any storage connection string (Azurite or Azure) with short, bounded retries.

    The SDK's default retry waits 15 s and more between tries; an unreachable account should fail in
    seconds with a clear message instead.
    """
    register(connection_string)
    try:
        return BlobServiceClient.from_connection_string(
            connection_string, connection_timeout=5, read_timeout=30,
            retry_policy=ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=2,
                                          random_jitter_range=0.2), **_transport(transport))
    except ValueError as e:
        raise StorageError(f"the storage connection string is invalid: {redact(str(e))}",
                           hint="use the account's connection string (DefaultEndpointsProtocol=...;AccountName=...)"
                           ) from None


def blob_service_for(account_url: str, credential: object, *, transport: object = None) -> BlobServiceClient:
    """A client for ``account_url`` signed in with ``credential`` (identity, no key), with the same retries."""
    register(account_url)
    return BlobServiceClient(account_url, credential=credential, connection_timeout=5, read_timeout=30,
                             retry_policy=ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=2,
                                                           random_jitter_range=0.2), **_transport(transport))


def _transport(transport: object) -> dict[str, object]:
    """``transport=`` for the client when one is given (an azure-core HttpTransport, e.g. through a proxy)."""
    return {"transport": transport} if transport is not None else {}


def without_query(url: str) -> str:
    """``url`` without its query string or fragment (where a SAS token travels) and without a password."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def describe(service: BlobServiceClient) -> str:
    """The account name and endpoint: safe to print (no key, no SAS: the query is dropped and the rest redacted)."""
    return redact(f"{service.account_name} at {without_query(service.primary_endpoint)}")


# ------------------------------------------------------------------------------------------ queues


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """``Key=Value;…`` → {lower-case key: value} (values may hold ``=``, as a SAS token does)."""
    out: dict[str, str] = {}
    for item in connection_string.split(";"):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip().lower()] = value.strip()
    return out


class StorageQueue:
    """One queue of a storage account, through the Storage REST API (Create Queue, Put Message, Peek Messages)
    signed with the account key (Shared Key) or a SAS token: what the local host needs to move a poison blob to
    ``webjobs-blobtrigger-poison`` as the Functions host does, without a queue SDK.
    https://learn.microsoft.com/rest/api/storageservices/put-message"""

    def __init__(self, endpoint: str, name: str, *, account: str | None = None, key: str | None = None,
                 sas: str | None = None, timeout: float = 5.0) -> None:
        self.endpoint, self.name = endpoint.rstrip("/"), name
        self.account, self._key, self._sas = account, key, (sas or "").lstrip("?")
        self.timeout = timeout

    @classmethod
    def for_connection(cls, connection_string: str, name: str) -> StorageQueue | None:
        """The queue ``name`` in the account of ``connection_string``; None when it names no queue service (a SAS
        connection with a BlobEndpoint only, say)."""
        register(connection_string)
        values = parse_connection_string(connection_string)
        if values.get("usedevelopmentstorage", "").lower() == "true":
            proxy = values.get("developmentstorageproxyuri", "http://127.0.0.1").rstrip("/")
            host = re.sub(r":\d+$", "", proxy)
            return cls(f"{host}:10001/{_DEV_ACCOUNT}", name, account=_DEV_ACCOUNT, key=_DEV_KEY)
        account = values.get("accountname")
        endpoint = values.get("queueendpoint")
        if not endpoint and account:
            protocol = values.get("defaultendpointsprotocol", "https")
            endpoint = f"{protocol}://{account}.queue.{values.get('endpointsuffix', 'core.windows.net')}"
        if not endpoint and values.get("blobendpoint"):
            blob = urlsplit(values["blobendpoint"])
            if ".blob." in blob.netloc:  # https://<account>.blob.<suffix>: the queue service is beside it
                endpoint = urlunsplit((blob.scheme, blob.netloc.replace(".blob.", ".queue.", 1), blob.path, "", ""))
        if not endpoint:
            return None
        if not account:
            path = urlsplit(endpoint).path.strip("/")
            account = path.split("/")[0] if path else urlsplit(endpoint).netloc.split(".")[0]
        return cls(endpoint, name, account=account, key=values.get("accountkey"),
                   sas=values.get("sharedaccesssignature"))

    def __str__(self) -> str:
        return f"queue {self.name} at {redact(without_query(self.endpoint))}"

    # ------------------------------------------------------------------ requests

    def _request(self, method: str, path: str, *, query: dict[str, str] | None = None, body: bytes = b"",
                 content_type: str = "") -> httpx.Response:
        url = f"{self.endpoint}/{quote(path, safe='/')}"
        params = dict(query or {})
        headers = {"x-ms-date": formatdate(time.time(), usegmt=True), "x-ms-version": _QUEUE_API_VERSION}
        if content_type:
            headers["Content-Type"] = content_type
        if self._sas:
            params.update(parse_qsl(self._sas, keep_blank_values=True))
        elif self._key:
            headers["Authorization"] = self._shared_key(method, url, query or {}, headers, len(body))
        try:
            return httpx.request(method, url, params=params, headers=headers, content=body, timeout=self.timeout)
        except httpx.HTTPError as e:
            raise StorageError(f"{self} could not be reached: {type(e).__name__}: {redact(str(e))}") from None

    def _shared_key(self, method: str, url: str, query: dict[str, str], headers: dict[str, str], length: int) -> str:
        """The Shared Key Authorization header (https://learn.microsoft.com/rest/api/storageservices/
        authorize-with-shared-key)."""
        canonical_headers = "".join(f"{k.lower()}:{v}\n" for k, v in sorted(headers.items())
                                    if k.lower().startswith("x-ms-"))
        resource = f"/{self.account}{urlsplit(url).path}"
        for k in sorted(query, key=str.lower):
            resource += f"\n{k.lower()}:{query[k]}"
        to_sign = "\n".join([method, "", "", str(length) if length else "", "", headers.get("Content-Type", ""),
                             "", "", "", "", "", ""]) + "\n" + canonical_headers + resource
        digest = hmac.new(base64.b64decode(self._key or ""), to_sign.encode("utf-8"), hashlib.sha256).digest()
        return f"SharedKey {self.account}:{base64.b64encode(digest).decode()}"

    def _check(self, resp: httpx.Response, what: str, ok: tuple[int, ...]) -> httpx.Response:
        if resp.status_code not in ok:
            code = resp.headers.get("x-ms-error-code") or resp.reason_phrase
            raise StorageError(f"{what} on {self} failed: HTTP {resp.status_code} {redact(code)}")
        return resp

    def create(self) -> None:
        """Create the queue (nothing when it exists)."""
        self._check(self._request("PUT", self.name), "creating the queue", (201, 204, 409))

    def send(self, text: str) -> None:
        """Put one message, base64-encoded as the Functions host's queue extension writes them."""
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        body = f"<QueueMessage><MessageText>{encoded}</MessageText></QueueMessage>".encode()
        resp = self._request("POST", f"{self.name}/messages", body=body, content_type="application/xml")
        if resp.status_code == 404:  # the queue went away: create it and send again
            self.create()
            resp = self._request("POST", f"{self.name}/messages", body=body, content_type="application/xml")
        self._check(resp, "sending a message", (201,))

    def peek(self, count: int = 32) -> list[str]:
        """Up to ``count`` messages at the front of the queue, decoded (left on the queue); [] when there is none."""
        query = {"peekonly": "true", "numofmessages": str(min(max(count, 1), 32))}
        resp = self._request("GET", f"{self.name}/messages", query=query)
        if resp.status_code == 404:
            return []
        self._check(resp, "peeking", (200,))
        texts = []
        for node in ElementTree.fromstring(resp.content).iter("MessageText"):
            raw = node.text or ""
            try:
                texts.append(base64.b64decode(raw, validate=True).decode("utf-8"))
            except ValueError:
                texts.append(raw)
        return texts
