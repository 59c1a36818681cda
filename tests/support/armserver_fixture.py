"""tests/support/armserver.py (the ARM + Azure AD model over real HTTPS) as a child process.

``start_arm_server`` (the ``arm_server`` fixture of support/plugin.py) makes a throwaway CA and a certificate signed
by it (the ``cryptography`` package) for 127.0.0.1/localhost and the hosts the server answers under their own names
(``served_hosts``, default the Kudu hosts ``*.scm.azurewebsites.net``), starts the server, and returns an
:class:`ArmServer`: its URL, the environment a child process needs to trust it
(``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` pointing at the CA: TLS is verified, never turned off), the environment
that sends it through the server's CONNECT proxy (:meth:`ArmServer.proxy_env`: the served hosts reach the fake,
every other host is refused and counted) and readers of the model's end state and recorded requests. The server is
stopped (SIGTERM) at the end of the test."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.core import stop_process

SERVER = Path(__file__).resolve().parent / "armserver.py"
SERVED_HOSTS = ("*.scm.azurewebsites.net",)  # as tests/support/armserver.py: Kudu (a Flex app's OneDeploy)


def make_certificates(directory: Path, dns_names: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) PEM files for 127.0.0.1, localhost and ``dns_names``
    (wildcards allowed in the first label, e.g. ``*.scm.azurewebsites.net``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelfunc test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost"),
                                                        *(x509.DNSName(n) for n in dns_names)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


@dataclass
class ArmServer:
    url: str  # https://127.0.0.1:<port> (no trailing slash)
    port: int
    ca_file: Path
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # what a child needs to trust the server
    proxy_url: str = ""  # http://127.0.0.1:<port>: the CONNECT proxy to the served hosts (and nowhere else)
    served_hosts: tuple[str, ...] = SERVED_HOSTS

    def proxy_env(self) -> dict[str, str]:
        """HTTPS_PROXY (and HTTP_PROXY) set to the server's proxy, loopback excepted: a child reaches the served
        hosts (e.g. <app>.scm.azurewebsites.net) at this server, and every other host is refused (GET
        /_fake/proxy counts it) instead of leaving the machine."""
        names = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")
        return {**{n: self.proxy_url for n in names}, "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost", "ALL_PROXY": "", "all_proxy": ""}

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310 - https only
            return json.loads(response.read() or b"null")

    def store(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/_fake/store")

    def get(self, path: str) -> dict[str, Any] | None:
        return self.store().get(path.lower())

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_fake/requests")

    def reset(self, *, store: bool = False) -> None:
        self._call("POST", "/_fake/reset" + ("?store=1" if store else ""), {})

    def image_functions(self, mapping: dict[str, list[str]]) -> None:
        self._call("POST", "/_fake/image-functions", mapping)

    def zip_functions(self, names: list[str]) -> None:
        """What a zip-deployed (Flex) app lists once its package is published."""
        self._call("POST", "/_fake/zip-functions", names)

    def kudu_outcomes(self, outcomes: list[tuple[int, str]]) -> None:
        """Queue the outcomes of the next OneDeploys (Kudu status, text), e.g. [(3, "Failed")]."""
        self._call("POST", "/_fake/kudu-outcomes", [list(o) for o in outcomes])

    def kudu(self) -> dict[str, Any]:
        """Kudu's deployments and each app's published package (SHA-256s)."""
        return self._call("GET", "/_fake/kudu")

    def proxy(self) -> dict[str, list[dict[str, Any]]]:
        """What the CONNECT proxy tunnelled (to this server) and refused, since the last reset."""
        return self._call("GET", "/_fake/proxy")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int | None:
        return stop_process(self.process, signal.SIGTERM, 10)


def start_arm_server(directory: Path, *, image_functions: dict[str, list[str]] | None = None,
                     zip_functions: list[str] | None = None, served_hosts: tuple[str, ...] = SERVED_HOSTS,
                     timeout: float = 20) -> ArmServer:
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = make_certificates(directory, served_hosts)
    ready, log = directory / "armserver.ready", directory / "armserver.log"
    args = [sys.executable, str(SERVER), "--port", "0", "--ready-file", str(ready), "--cert", str(cert_file),
            "--key", str(key_file), *(arg for host in served_hosts for arg in ("--serve-host", host))]
    for image, names in (image_functions or {}).items():
        args += ["--image-functions", f"{image}={','.join(names)}"]
    if zip_functions:
        args += ["--zip-functions", ",".join(zip_functions)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"armserver exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"armserver not ready in {timeout}s:\n{log.read_text(errors='replace')}")
        time.sleep(0.02)
    info = json.loads(ready.read_text(encoding="utf-8"))
    env = {"REQUESTS_CA_BUNDLE": str(ca_file), "SSL_CERT_FILE": str(ca_file)}
    return ArmServer(info["url"], info["port"], ca_file, proc, log, env, info["proxy_url"], served_hosts)
