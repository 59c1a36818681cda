"""A stand-in for GitHub's OIDC ID-token service (what ``ACTIONS_ID_TOKEN_REQUEST_URL`` points at in a job with
``permissions: id-token: write``), on plain HTTP on 127.0.0.1, for tests in this process and for child processes.

It answers ``GET <url>&audience=...`` with ``{"value": ID_TOKEN}`` when the request carries
``Authorization: bearer REQUEST_TOKEN`` (401 otherwise) and records each request (path, query, the Authorization
header, the peer). Both values are registered as secrets (tests/secrets_guard.py): they must never reach a log,
an output or a summary.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from secrets_guard import secret

ID_TOKEN = secret("gh-oidc-id-token-SECRET-31415")
REQUEST_TOKEN = secret("actions-request-token-SECRET-27182")


class IdTokenServer:
    """What GitHub's ACTIONS_ID_TOKEN_REQUEST_URL answers: {"value": <JWT>} for a bearer request token."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, object]] = []
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                owner.requests.append({"path": url.path, "query": parse_qs(url.query),
                                       "authorization": self.headers.get("Authorization"),
                                       "peer": self.client_address[0]})
                ok = self.headers.get("Authorization") == f"bearer {REQUEST_TOKEN}"
                body = json.dumps({"value": ID_TOKEN} if ok else {"message": "bad token"}).encode()
                self.send_response(owner.status if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/_apis/distributedtask/token?api-version=2.0"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def env(self) -> dict[str, str]:
        """The two variables the runner sets for a job with ``id-token: write``."""
        return {"ACTIONS_ID_TOKEN_REQUEST_URL": self.url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN}

    def __enter__(self) -> IdTokenServer:
        self.thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.server.shutdown()
        self.server.server_close()
