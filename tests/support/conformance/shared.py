"""The conformance run, shared by tests/host/test_conformance.py and tests/host/test_openapi.py in one pytest process
(both modules carry ``xdist_group("conformance")``, so under xdist one worker runs both).

Each catalogue script is started once under azmlinfsrv and once under `modelfunc serve`, forked from one pair of fork
servers (zygotes, closed when pytest ends); the scripts test_openapi.py compares the OpenAPI documents of (DECORATED and
UNDECORATED below) are first asked for GET swagger.json with every ?version= of QUERIES, on the freshly started
servers, then get the conformance requests. A script's run is made the first time a module asks for it and kept;
test_openapi.py alone (or without test_conformance.py before it in the process) gets runs of the documents only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .catalogue import SCRIPTS, Script
from .harness import Run, Zygote, close_zygotes, oracle_python, run_all, start_zygotes

# Every ?version= azmlinfsrv takes: server/swagger.py registers builders "2" (alias "2.0"), "3" (alias "3.0") and
# "3.1"; server/routes.py get_swagger_specification defaults to "2".
# The marks of both modules that use the runs: one worker runs them, and the first test to need the runs pays for
# all of them (about 1 min alone; five times that while a cold machine's other workers download and build): a
# budget for that, not the per-test default.
MODULE_MARKS = [pytest.mark.xdist_group("conformance"), pytest.mark.timeout(900)]

VERSIONS = ("2", "2.0", "3", "3.0", "3.1")
NOT_VERSIONS = ("", "1", "4", "2.1", "3.2", "v3")
QUERIES: tuple[str | None, ...] = (None, *VERSIONS, *NOT_VERSIONS)


def _decorated(script: Script) -> bool:
    source = script.path.read_text()
    return "@input_schema" in source or "@output_schema" in source


DECORATED = [s.name for s in SCRIPTS if s.starts and _decorated(s)]
UNDECORATED = ["plain_dict", "plain_raw_text", "raw_echo"]  # a JSON sample, a CSV one, @rawhttp
DOCUMENTS = {name: QUERIES for name in DECORATED + UNDECORATED}

_zygotes: dict[str, Zygote] = {}
_runs: dict[str, Run] = {}
_document_runs: dict[str, Run] = {}  # documents_only runs (no conformance requests), kept apart
_work: dict[str, Path] = {}


def zygotes(config: pytest.Config) -> dict[str, Zygote]:
    """The fork servers of azmlinfsrv and modelfunc, started on first use and closed when pytest ends."""
    if not _zygotes:
        _zygotes.update(start_zygotes(oracle_python()))  # type: ignore[arg-type]
        config.add_cleanup(_close)
    return _zygotes


def _close() -> None:
    close_zygotes(_zygotes)
    _zygotes.clear()
    _runs.clear()
    _document_runs.clear()
    _work.clear()


def runs(names: list[str], config: pytest.Config, tmp_path_factory: pytest.TempPathFactory, *,
         documents_only: bool = False) -> dict[str, Run]:
    """The runs of the scripts ``names``: those not made yet made now (run_all, two at a time), with DOCUMENTS.
    ``documents_only``: a script whose full run this process has not made (test_conformance.py ran elsewhere, e.g.
    on another xdist worker) gets a run of its documents only, on servers of its own, as test_openapi.py did alone."""
    forks = zygotes(config)
    if documents_only:
        missing = [s for s in SCRIPTS if s.name in names and s.name not in _runs and s.name not in _document_runs]
        if missing:
            work = _work.setdefault("documents", tmp_path_factory.mktemp("openapi-documents"))
            _document_runs.update(run_all(missing, work, oracle_python(), parallel=2,  # type: ignore[arg-type]
                                          zygotes=forks, documents=DOCUMENTS, requests=False))
        return {name: _runs.get(name) or _document_runs[name] for name in names}
    missing = [s for s in SCRIPTS if s.name in names and s.name not in _runs]
    if missing:
        work = _work.setdefault("conformance", tmp_path_factory.mktemp("conformance"))
        _runs.update(run_all(missing, work, oracle_python(), parallel=2, zygotes=forks,  # type: ignore[arg-type]
                             documents=DOCUMENTS))
    return {name: _runs[name] for name in names}


def oracle_version() -> str | None:
    return _zygotes["azmlinfsrv"].version if _zygotes else None
