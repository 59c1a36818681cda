"""The ARM + Azure AD model of tests/azurefake.py behind a real HTTPS server, for tests that run the CLI (or
``az``) as a separate process::

    python tests/armserver.py --port 0 --ready-file F --cert C --key K [--image-functions IMAGE=fn1,fn2 ...]

It listens on 127.0.0.1 only, over TLS only, and writes ``{"port": N, "url": "https://127.0.0.1:N"}`` to the
ready file (atomically) once it accepts connections; SIGTERM (or SIGINT) stops it.

* ``GET /metadata/endpoints`` describes it as a cloud (what ``az cloud register --endpoint-resource-manager``
  and ``modelfunc deploy --arm-endpoint`` read): its own URL is the ARM endpoint, the sign-in endpoint and
  the token audience.
* Azure AD paths (``/{tenant}/oauth2/v2.0/token``, ``/{tenant}/v2.0/.well-known/openid-configuration``,
  ``/common/discovery/instance``...) go to the model as ``login.microsoftonline.com``, everything else as
  ``management.azure.com``; the model's own URLs in answers (Location, Azure-AsyncOperation, JSON bodies)
  are rewritten to this server's URL. A 202 gets ``Retry-After: 0`` so that long-operation polls do not wait.
* Test-only endpoints (answered as the model holds them, not rewritten): ``GET /_fake/store`` (the
  resources), ``GET /_fake/requests`` (what was asked, with transport facts; never a token, a secret or an
  assertion: only the Authorization scheme and the names of secret form fields), ``POST /_fake/reset``
  (forget the requests; ``?store=1``: the resources too), ``POST /_fake/image-functions``
  ({"image": ["fn", ...]}) and ``POST /_fake/fail`` ({"method", "path", "status", "times"}: inject failures).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from azurefake import FakeArm  # noqa: E402

ARM_HOST = "management.azure.com"
AAD_HOST = "login.microsoftonline.com"
_AAD_PATH = re.compile(r"^/[^/]+/(oauth2/|v2\.0/\.well-known/|\.well-known/|discovery/|kerberos)", re.I)
# Form fields of a token request whose values are secrets: recorded by name only.
_PUBLIC_FORM_FIELDS = {"grant_type", "scope", "client_id", "client_assertion_type", "client_info"}
_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error"}


def metadata(base: str, *, storage_suffix: str, acr_suffix: str, name: str) -> dict[str, Any]:
    """The cloud this server is, in the shape of ARM's /metadata/endpoints (one cloud, as Azure Stack answers)."""
    return {
        "name": name, "resourceManager": f"{base}/", "portal": f"{base}/", "gallery": f"{base}/",
        "graph": f"{base}/", "graphAudience": f"{base}/", "batch": f"{base}/", "sqlManagement": f"{base}/",
        "media": f"{base}/", "vmImageAliasDoc": f"{base}/", "activeDirectoryDataLake": f"{base}/",
        "microsoftGraphResourceId": f"{base}/",
        "authentication": {"loginEndpoint": f"{base}/", "audiences": [f"{base}/"], "tenant": "common",
                           "identityProvider": "AAD"},
        "suffixes": {"storage": storage_suffix, "acrLoginServer": acr_suffix, "keyVaultDns": f"vault.{storage_suffix}",
                     "sqlServerHostname": f"database.{storage_suffix}"},
    }


class FakeCloud:
    """The model, its lock (handler threads share it) and what the transport saw."""

    def __init__(self, *, storage_suffix: str, acr_suffix: str, name: str) -> None:
        self.arm = FakeArm()
        self.lock = threading.Lock()
        self.transport: list[dict[str, Any]] = []  # per request: peer, Host header, TLS version (same order)
        self.base = ""
        self.storage_suffix, self.acr_suffix, self.name = storage_suffix, acr_suffix, name

    def rewrite(self, text: str) -> str:
        return text.replace(f"https://{ARM_HOST}", self.base).replace(f"https://{AAD_HOST}", self.base)

    def recorded(self) -> list[dict[str, Any]]:
        out = []
        for req, seen in zip(self.arm.requests, self.transport, strict=True):
            body: Any = req.body
            if req.host == AAD_HOST and isinstance(body, dict):
                body = {k: (v if k in _PUBLIC_FORM_FIELDS else ["<redacted>"]) for k, v in body.items()}
            elif isinstance(body, bytes):
                body = f"<{len(body)} bytes>"
            out.append({"method": req.method, "path": req.path, "query": req.query, "host": req.host,
                        "mutating": req.mutating and req.host == ARM_HOST, "body": body,
                        "authorization_scheme": req.authorization.split(" ", 1)[0] if req.authorization else "",
                        **seen})
        return out


def handler_for(cloud: FakeCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeArm/1"

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, *,
                  rewrite: bool = True) -> None:
            text = "" if payload is None else json.dumps(payload)
            content = (cloud.rewrite(text) if rewrite else text).encode()
            self.send_response(status, _REASONS.get(status, ""))
            for name, value in (headers or {}).items():
                if name.lower() != "content-length":
                    self.send_header(name, cloud.rewrite(str(value)))
            if status == 202 and not any(k.lower() == "retry-after" for k in headers or {}):
                self.send_header("Retry-After", "0")
            if content:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if content and self.command != "HEAD":
                self.wfile.write(content)

        def _handle(self) -> None:
            body = self._body()
            url = urlsplit(self.path)
            path = url.path
            if path.startswith("/_fake/"):
                return self._test_endpoint(path, url.query, body)
            if path.rstrip("/") == "/metadata/endpoints" and self.command == "GET":
                return self._send(200, metadata(cloud.base, storage_suffix=cloud.storage_suffix,
                                                acr_suffix=cloud.acr_suffix, name=cloud.name))
            host = AAD_HOST if _AAD_PATH.match(path) or path.lower().startswith("/common/") else ARM_HOST
            seen = {"peer": self.client_address[0], "host_header": self.headers.get("Host", ""),
                    "tls": self.request.version() if isinstance(self.request, ssl.SSLSocket) else None}
            with cloud.lock:
                status, headers, payload = cloud.arm.handle(self.command, f"https://{host}{self.path}", body,
                                                            {"Authorization": self.headers.get("Authorization", "")})
                cloud.transport.append(seen)
            self._send(status, payload, headers)

        def _test_endpoint(self, path: str, query: str, body: bytes) -> None:
            with cloud.lock:
                if path == "/_fake/store" and self.command == "GET":
                    return self._send(200, cloud.arm.store, rewrite=False)
                if path == "/_fake/requests" and self.command == "GET":
                    return self._send(200, cloud.recorded(), rewrite=False)
                if path == "/_fake/reset" and self.command == "POST":
                    cloud.arm.requests.clear()
                    cloud.arm.aad_forms.clear()
                    cloud.transport.clear()
                    if parse_qs(query).get("store") == ["1"]:
                        cloud.arm = FakeArm()
                    return self._send(200, {"reset": True}, rewrite=False)
                if path == "/_fake/image-functions" and self.command == "POST":
                    cloud.arm.image_functions.update({k: list(v) for k, v in json.loads(body or b"{}").items()})
                    return self._send(200, cloud.arm.image_functions, rewrite=False)
                if path == "/_fake/fail" and self.command == "POST":
                    spec = json.loads(body or b"{}")
                    cloud.arm.fail(spec["method"], spec["path"], int(spec["status"]), int(spec.get("times", 1)))
                    return self._send(200, {"faults": len(cloud.arm.faults)}, rewrite=False)
            return self._send(404, {"error": {"code": "NotFound", "message": path}}, rewrite=False)

        do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # The request line only (paths and queries carry no secrets here; headers and bodies are not logged).
            sys.stderr.write(f"armserver: {self.address_string()} {format % args}\n")

    return Handler


def parse_image_functions(values: list[str]) -> dict[str, list[str]]:
    out = {}
    for value in values:
        image, sep, names = value.rpartition("=")
        if not sep or not image:
            raise SystemExit(f"--image-functions {value!r} is not IMAGE=fn1,fn2")
        out[image] = [n for n in names.split(",") if n]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True, help="PEM certificate (chain) for 127.0.0.1")
    parser.add_argument("--key", type=Path, required=True, help="its PEM private key")
    parser.add_argument("--image-functions", action="append", default=[], metavar="IMAGE=fn1,fn2")
    parser.add_argument("--storage-suffix", default="core.windows.net")
    parser.add_argument("--acr-suffix", default="azurecr.io")
    parser.add_argument("--name", default="FakeArmCloud", help="the cloud's name in /metadata/endpoints")
    args = parser.parse_args(argv)

    cloud = FakeCloud(storage_suffix=args.storage_suffix, acr_suffix=args.acr_suffix, name=args.name)
    cloud.arm.image_functions.update(parse_image_functions(args.image_functions))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(cloud))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    # The handshake happens in the handler's thread (on its first read), not in the accepting one.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    port = server.server_address[1]
    cloud.base = f"https://127.0.0.1:{port}"

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
    tmp.write_text(json.dumps({"port": port, "url": cloud.base}), encoding="utf-8")
    os.replace(tmp, args.ready_file)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
