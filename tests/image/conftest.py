"""The image's tests: local registries (the real `registry` program) on a real Docker engine (``docker_engine``,
support/plugin.py), one open and one that wants a user and password, each for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.engine import Registry

# ``auth_registry``'s user and password (tests read them from it and look for the password in every output).
REGISTRY_USER, REGISTRY_PASSWORD = "modelfunc", "s3cret-Pa55word-for-the-registry"


def _registry(tmp_path_factory: pytest.TempPathFactory, name: str, **credentials: str) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp(name), **credentials).start()
    yield reg
    reg.stop()
    reg.forget_images()


@pytest.fixture(scope="session")
def registry(tmp_path_factory, docker_engine):  # noqa: ANN001, ANN201
    yield from _registry(tmp_path_factory, "registry")


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory, docker_engine):  # noqa: ANN001, ANN201
    yield from _registry(tmp_path_factory, "auth-registry", user=REGISTRY_USER, password=REGISTRY_PASSWORD)
