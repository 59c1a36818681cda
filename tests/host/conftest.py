"""The local host's tests: ``redis_server``, a real redis-server (no persistence) on a free loopback port with a
password the secrets guard looks for everywhere, stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.redis_server import RedisServer
from support.secrets_guard import secret

REDIS_PASSWORD = secret("redis-Pa55-invented-by-the-host-tests")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password=REDIS_PASSWORD).start()
    yield server
    server.stop()
