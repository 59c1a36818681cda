"""The fixtures every test folder may use, loaded by the root conftest.py as a pytest plugin.

* ``example``: ``example("diabetes-blob")``, a private copy of an example repo;
* ``azurite``: a real Azurite blob service for the whole session;
* ``serve``: ``serve(repo_or_app_dir, connection_string=...)``, a running `modelfunc serve`, stopped after the test;
* ``step``: an action step's environment (support/action_step.py);
* ``arm``: the in-process ARM model (support/azurefake.py); ``arm_server``: the same over real HTTPS in a child
  process (support/armserver_fixture.py); both read the module's or test's ``@pytest.mark.arm(...)``;
* ``id_server``: GitHub's ID-token endpoint (support/idtoken_server.py);
* ``docker_engine``: a real Docker engine with the base image, for the session (support/engine.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelfunc.azurite import Azurite

from support.action_step import Step
from support.core import Hosts, copy_example

# `modelfunc up` (and the action's up step) builds and self-tests the image when a Docker engine answers. Whether
# one answers during a test depends on which test started dockerd first, and the default base image cannot be
# pulled here: so `up` builds no image in the suite unless a test asks for one (--image on, with the local base).
os.environ["MODELFUNC_UP_IMAGE"] = "off"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "arm(images={image: [function, ...]}, zip_functions=[...], clients=False, credential=None): what "
                   "the ARM model's apps list (the `arm` and `arm_server` fixtures); clients=True puts `arm` behind "
                   "every client modelfunc builds, credential='module.attr' swaps that sign-in for a stand-in")


@pytest.fixture
def example(tmp_path: Path):  # noqa: ANN201
    """``example("diabetes-blob")``: a private copy of an example repo."""
    return lambda name: copy_example(name, tmp_path)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite blob service for the whole session (installed by `make setup`)."""
    with Azurite() as emulator:
        yield emulator


@pytest.fixture
def serve(tmp_path: Path):  # noqa: ANN201
    """``serve(repo_or_app_dir, connection_string=...)`` → a running Host, stopped after the test."""
    hosts = Hosts(tmp_path)
    yield hosts.start
    hosts.stop_all()


@pytest.fixture
def step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Step:
    return Step(tmp_path, monkeypatch)


def _arm_marker(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("arm")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def arm(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The in-test model of ARM (support/azurefake.py), its apps listing what ``@pytest.mark.arm`` says."""
    from modelfunc.azure import PipelineSettings

    from support.azurefake import FakeArm, FakeCredential

    wanted = _arm_marker(request)
    fake = FakeArm()
    fake.image_functions.update(wanted.get("images", {}))
    if "zip_functions" in wanted:
        fake.zip_functions = list(wanted["zip_functions"])
    if wanted.get("clients"):
        monkeypatch.setattr("modelfunc.azure.clients.default_settings",
                            lambda: PipelineSettings(transport=fake.transport(), polling_interval=0,
                                                     retry_backoff_factor=0))
    if wanted.get("credential"):
        monkeypatch.setattr(wanted["credential"], lambda *args, **kwargs: FakeCredential())
    return fake


@pytest.fixture
def arm_server(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    """The ARM + Azure AD model over real HTTPS (support/armserver.py) as a child process, stopped after the test."""
    from support.armserver_fixture import start_arm_server

    wanted = _arm_marker(request)
    srv = start_arm_server(tmp_path / "armserver", image_functions=wanted.get("images"),
                           zip_functions=wanted.get("zip_functions"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def id_server():  # noqa: ANN201
    """GitHub's ID-token endpoint on loopback (``ACTIONS_ID_TOKEN_REQUEST_URL``)."""
    from support.idtoken_server import IdTokenServer

    with IdTokenServer() as srv:
        yield srv


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--dist loadgroup`` sends the tests of one ``xdist_group`` to one worker by the ``@<group>`` suffix of their
    ids. pytest-xdist 3.8 appends it to ``item._nodeid``, which pytest 9.2 no longer reads (``nodeid`` is
    ``str(item._id)``), so every group was spread over the workers: append it where this pytest reads it."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = f"@{'_'.join(names)}"
        if not names or item.nodeid.endswith(suffix):
            continue  # no group, or a pytest-xdist that did it
        if hasattr(item, "_id"):
            from _pytest.nodeid import coerce_node_id

            item._id = coerce_node_id(item.nodeid + suffix)
        else:
            item._nodeid = item.nodeid + suffix


def run_dir(factory: pytest.TempPathFactory) -> Path:
    """The temp dir every process of this run shares: the base temp dir, or under pytest-xdist the one above each
    worker's own (xdist gives worker gwN ``<base>/popen-gwN``)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A real Docker engine (started if none answers) with the local base image, shared by every worker of the run
    and stopped when the run ends (:func:`pytest_sessionfinish`); skipped where none can start."""
    from support.engine import shared_engine

    reason = shared_engine(run_dir(tmp_path_factory))
    if reason:
        pytest.skip(reason)
    import docker

    return docker.from_env(timeout=600)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The engine a worker started is stopped by the process that outlives them all: xdist's controller, or the one
    process of a run without xdist."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from support.engine import stop_started_engine

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        stop_started_engine(factory.getbasetemp())
