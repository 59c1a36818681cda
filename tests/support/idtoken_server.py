"""A stand-in for GitHub's OIDC ID-token service (what ``ACTIONS_ID_TOKEN_REQUEST_URL`` points at in a job with
``permissions: id-token: write``), on plain HTTP on 127.0.0.1, for tests in this process and for child processes.

It answers ``GET <url>&audience=...`` with ``{"value": ID_TOKEN}`` when the request carries
``Authorization: bearer REQUEST_TOKEN`` (401 otherwise) and records each request (path, query, the Authorization
header, the peer). Both values are registered as secrets (tests/support/secrets_guard.py): they must never reach a log,
an output or a summary.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from support.httpstub import QuietHandler, send_json, serving
from support.secrets_guard import secret

ID_TOKEN = secret("gh-oidc-id-token-SECRET-31415")
REQUEST_TOKEN = secret("actions-request-token-SECRET-27182")


class IdTokenServer:
    """What GitHub's ACTIONS_ID_TOKEN_REQUEST_URL answers: {"value": <JWT>} for a bearer request token."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, object]] = []
        self.status = status
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                owner.requests.append({"path": url.path, "query": parse_qs(url.query),
                                       "authorization": self.headers.get("Authorization"),
                                       "peer": self.client_address[0]})
                ok = self.headers.get("Authorization") == f"bearer {REQUEST_TOKEN}"
                send_json(self, owner.status if ok else 401, {"value": ID_TOKEN} if ok else {"message": "bad token"})

        self._serving = serving(Handler)
        self.url = ""

    def env(self) -> dict[str, str]:
        """The two variables the runner sets for a job with ``id-token: write``."""
        return {"ACTIONS_ID_TOKEN_REQUEST_URL": self.url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN}

    def __enter__(self) -> IdTokenServer:
        server = self._serving.__enter__()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/_apis/distributedtask/token?api-version=2.0"
        return self

    def __exit__(self, *args: object) -> None:
        self._serving.__exit__(*args)
