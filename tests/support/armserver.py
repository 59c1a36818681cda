"""The ARM + Azure AD model of tests/support/azurefake.py behind a real HTTPS server, for tests that run the CLI (or
``az``) as a separate process::

    python tests/support/armserver.py --port 0 --ready-file F --cert C --key K [--image-functions IMAGE=fn1,fn2 ...]
                              [--serve-host '*.scm.azurewebsites.net' ...] [--zip-functions fn1,fn2]

It listens on 127.0.0.1 only, over TLS only, and writes ``{"port": N, "url": "https://127.0.0.1:N",
"proxy_port": P, "proxy_url": "http://127.0.0.1:P"}`` to the ready file (atomically) once it accepts
connections; SIGTERM (or SIGINT) stops it.

* Hosts the model serves under their own names (``--serve-host``, fnmatch patterns; default: the Kudu hosts
  ``*.scm.azurewebsites.net``, where a Flex app's OneDeploy goes): a request whose Host header names one goes to
  the model as that host. A child reaches them through the **CONNECT proxy** this server also runs on
  127.0.0.1 (plain HTTP, for ``HTTPS_PROXY``): it tunnels a ``CONNECT host:443`` for a served host to this
  server's own TLS port and nowhere else; anything else (another host or port, a plain ``GET http://...``) is
  refused with 403, logged and counted (``GET /_fake/proxy``). No DNS is touched and TLS stays verified: the
  certificate carries the served names (tests/support/armserver_fixture.py makes it).

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
  (forget the requests and the proxy's record; ``?store=1``: the resources too), ``POST /_fake/image-functions``
  ({"image": ["fn", ...]}), ``POST /_fake/fail`` ({"method", "path", "status", "times"}: inject failures),
  ``POST /_fake/zip-functions`` (["fn", ...]: what a zip-deployed app lists), ``POST /_fake/kudu-outcomes``
  ([[status, "text"], ...]: queued outcomes of the next OneDeploys, e.g. [[3, "Failed"]]), ``GET /_fake/kudu``
  (Kudu's deployments and each app's published package, as SHA-256s, never the bytes) and ``GET /_fake/proxy``
  (the tunnels made and the requests refused).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, so that `support` imports
from support.azurefake import FakeArm  # noqa: E402

ARM_HOST = "management.azure.com"
AAD_HOST = "login.microsoftonline.com"
SERVED_HOSTS = ("*.scm.azurewebsites.net",)  # Kudu: a Flex app's OneDeploy (flex.scm_host)
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


def served(host: str, patterns: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return bool(host) and any(fnmatch.fnmatchcase(host, p.lower()) for p in patterns)


class FakeCloud:
    """The model, its lock (handler threads share it) and what the transport saw."""

    def __init__(self, *, storage_suffix: str, acr_suffix: str, name: str,
                 served_hosts: tuple[str, ...] = SERVED_HOSTS) -> None:
        self.arm = FakeArm()
        self.lock = threading.Lock()
        self.transport: list[dict[str, Any]] = []  # per request: peer, Host header, SNI, TLS version (same order)
        self.base = ""
        self.storage_suffix, self.acr_suffix, self.name = storage_suffix, acr_suffix, name
        self.served_hosts = served_hosts
        self.tunnels: list[dict[str, Any]] = []  # CONNECTs the proxy made to this server
        self.refused: list[dict[str, Any]] = []  # what the proxy refused (it never connects anywhere else)

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
                        "mutating": req.mutating and req.host != AAD_HOST, "body": body,
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
            named = urlsplit(f"//{self.headers.get('Host', '')}").hostname or ""
            if served(named, cloud.served_hosts):  # e.g. <app>.scm.azurewebsites.net, through the CONNECT proxy
                host = named
            else:
                host = AAD_HOST if _AAD_PATH.match(path) or path.lower().startswith("/common/") else ARM_HOST
            seen = {"peer": self.client_address[0], "host_header": self.headers.get("Host", ""),
                    "sni": getattr(self.request, "sni", None),
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
                    cloud.tunnels.clear()
                    cloud.refused.clear()
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
                if path == "/_fake/zip-functions" and self.command == "POST":
                    cloud.arm.zip_functions = [str(n) for n in json.loads(body or b"[]")]
                    return self._send(200, cloud.arm.zip_functions, rewrite=False)
                if path == "/_fake/kudu-outcomes" and self.command == "POST":
                    cloud.arm.kudu_outcomes += [(int(s), str(t)) for s, t in json.loads(body or b"[]")]
                    return self._send(200, {"queued": len(cloud.arm.kudu_outcomes)}, rewrite=False)
                if path == "/_fake/kudu" and self.command == "GET":
                    return self._send(200, kudu_view(cloud.arm), rewrite=False)
                if path == "/_fake/proxy" and self.command == "GET":
                    return self._send(200, {"tunnels": cloud.tunnels, "refused": cloud.refused}, rewrite=False)
            return self._send(404, {"error": {"code": "NotFound", "message": path}}, rewrite=False)

        do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # The request line only (paths and queries carry no secrets here; headers and bodies are not logged).
            sys.stderr.write(f"armserver: {self.address_string()} {format % args}\n")

    return Handler


def kudu_view(arm: FakeArm) -> dict[str, Any]:
    """Kudu's deployments (oldest first) and each app's published package: SHA-256s, never the bytes."""
    def sha(data: Any) -> str | None:
        return hashlib.sha256(data).hexdigest() if isinstance(data, bytes) else None

    deployments = [{**{k: v for k, v in record.items() if k not in ("polls", "outcome", "zip")},
                    "zip_sha256": sha(record.get("zip"))} for key, record in arm.kudu.items() if key != "latest"]
    return {"deployments": deployments, "published": {app: sha(z) for app, z in arm.published.items()}}


def proxy_for(cloud: FakeCloud, upstream_port: int) -> socketserver.ThreadingTCPServer:
    """The CONNECT proxy on 127.0.0.1: a tunnel to this server's TLS port for a served host, 403 for anything else.

    It only ever connects to 127.0.0.1:<upstream_port>, whatever the request names; the TLS inside the tunnel is
    between the client and this server (the proxy sees bytes only)."""

    class Proxy(socketserver.StreamRequestHandler):
        rbufsize = 0  # unbuffered: nothing after the request head may be read here, it belongs to the tunnel

        def _refuse(self, line: str, why: str) -> None:
            shown = re.sub(r"\?\S*", "?...", line)[:300]  # a query may carry a key: never recorded
            with cloud.lock:
                cloud.refused.append({"request": shown, "why": why, "peer": self.client_address[0]})
            sys.stderr.write(f"armserver proxy: REFUSED {shown!r} ({why})\n")
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        def handle(self) -> None:
            line = self.rfile.readline(8192).decode("latin-1").strip()
            while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # the request's headers (Host, Proxy-Connection, User-Agent): nothing to use
            method, _, rest = line.partition(" ")
            target = rest.rpartition(" ")[0] if " HTTP/" in rest else rest
            if method.upper() != "CONNECT":
                return self._refuse(line, "only CONNECT is proxied")
            host, _, port = target.rpartition(":")
            if port != "443" or not served(host, cloud.served_hosts):
                return self._refuse(line, f"not a host this server serves on 443 ({', '.join(cloud.served_hosts)})")
            try:
                upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=10)
            except OSError as e:
                return self._refuse(line, f"this server did not answer: {e}")
            with cloud.lock:
                cloud.tunnels.append({"target": target, "peer": self.client_address[0]})
            sys.stderr.write(f"armserver proxy: tunnel {target} -> 127.0.0.1:{upstream_port}\n")
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            client = self.connection
            upstream.settimeout(None)
            client.settimeout(None)
            try:
                pair = {client: upstream, upstream: client}
                while True:
                    readable, _, _ = select.select(list(pair), [], [], 300)
                    if not readable:
                        return
                    for sock in readable:
                        data = sock.recv(65536)
                        if not data:
                            return
                        pair[sock].sendall(data)
            except OSError:
                return
            finally:
                upstream.close()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    return server


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
    parser.add_argument("--serve-host", action="append", default=[], metavar="PATTERN",
                        help=f"a host served under its own name (fnmatch; repeatable; default: {SERVED_HOSTS[0]})")
    parser.add_argument("--zip-functions", default="", metavar="fn1,fn2", help="what a zip-deployed app lists")
    args = parser.parse_args(argv)

    cloud = FakeCloud(storage_suffix=args.storage_suffix, acr_suffix=args.acr_suffix, name=args.name,
                      served_hosts=tuple(args.serve_host) or SERVED_HOSTS)
    cloud.arm.image_functions.update(parse_image_functions(args.image_functions))
    cloud.arm.zip_functions = [n for n in args.zip_functions.split(",") if n]
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(cloud))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)

    def remember_sni(sock: Any, name: str | None, ctx: ssl.SSLContext) -> None:
        sock.sni = name  # the name the client asked for (None: an IP address); recorded per request

    context.sni_callback = remember_sni
    # The handshake happens in the handler's thread (on its first read), not in the accepting one.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    port = server.server_address[1]
    cloud.base = f"https://127.0.0.1:{port}"
    proxy = proxy_for(cloud, port)
    proxy_port = proxy.server_address[1]
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()
        threading.Thread(target=proxy.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
    tmp.write_text(json.dumps({"port": port, "url": cloud.base, "proxy_port": proxy_port,
                               "proxy_url": f"http://127.0.0.1:{proxy_port}"}), encoding="utf-8")
    os.replace(tmp, args.ready_file)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        proxy.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
