"""examples/digits-redis-http: the Azure docs' Redis entry script, fixed, with its hand-written cache replaced by
``cache: redis`` — on a real redis-server (tests/support/redis_server.py), through the real local host.

The README's claims are checked on the README's own code: its "before" block (the docs' score.py as published) is run
through the runtime shim and fails the ways the README says; its diff, applied to that block, is the example's
score.py; and the example scores its sample through `modelfunc serve`, the second time from Redis.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from support.core import EXAMPLES
from support.redis_server import RedisServer

EXAMPLE = EXAMPLES / "digits-redis-http"
README = (EXAMPLE / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)
BEFORE = next(code for lang, code in BLOCKS if lang == "python")  # the docs' score.py, as published
DIFF = next(code for lang, code in BLOCKS if lang == "diff")
SAMPLE = (EXAMPLE / "samples" / "input.json").read_bytes()
EXPECTED = json.loads((EXAMPLE / "samples" / "expected.json").read_text())
JSON = {"content-type": "application/json"}


def side(diff: str, keep: str) -> str:
    """One side of a unified diff without hunk headers ("-" the old file, "+" the new); blank lines are context."""
    return "\n".join(line[1:] for line in diff.splitlines() if line[:1] in ("", " ", keep)) + "\n"


def test_the_readmes_diff_turns_the_docs_score_py_into_the_examples() -> None:
    assert side(DIFF, "-") == BEFORE
    score = (EXAMPLE / "score.py").read_text(encoding="utf-8")
    docstring_end = score.index('"""', 3) + 3
    assert score[docstring_end:].lstrip("\n") == side(DIFF, "+")


def load(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """``script`` as score.py beside the example's model, loaded by the runtime shim as the app loads it."""
    from modelfunc.runtime.modelfunc_runtime import EntryScript

    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text(script, encoding="utf-8")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(EXAMPLE / "model"))  # restored after the test (the shim sets it)
    return EntryScript(app / "score.py", model_dir=EXAMPLE / "model")


def test_bug_1_sklearn_externals_joblib_does_not_import(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from modelfunc.runtime.modelfunc_runtime import EntryScriptError

    with pytest.raises(EntryScriptError, match=r"importing score.py failed: ImportError: cannot import name 'joblib' "
                                               r"from 'sklearn.externals'"):
        load(BEFORE, tmp_path, monkeypatch)


def test_bug_2_the_decorators_are_never_defined(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from modelfunc.runtime.modelfunc_runtime import EntryScriptError

    script = BEFORE.replace("from sklearn.externals import joblib", "import joblib")
    with pytest.raises(EntryScriptError, match="importing score.py failed: NameError: name 'input_schema' is not "
                                               "defined"):
        load(script, tmp_path, monkeypatch)


def test_bugs_3_and_4_every_request_answers_200_with_an_error_text(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """With its imports fixed and a real Redis behind it, the original never predicts: it looks the input array up as
    a key (redis-py refuses it), answers the error text with a 200, and writes nothing to Redis. (This Redis has no
    password: the original would hold it in score.py, bug 5, and no secret may reach a file here.)"""
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        _run_the_original(tmp_path, monkeypatch, redis_server)
    finally:
        redis_server.stop()


def _run_the_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    imports = ("import joblib\n"
               "from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType\n"
               "from inference_schema.schema_decorators import input_schema, output_schema\n"
               "input_sample = np.zeros((1, 64))\noutput_sample = np.array([0])\n")
    script = (BEFORE.replace("from sklearn.externals import joblib\n", imports)
              .replace("host='<host_url>', port=6380, password=\"<access_key>\", ssl=True",
                       f"host='127.0.0.1', port={redis_server.port}, password=None, ssl=False"))
    assert script.count(str(redis_server.port)) == 1
    entry = load(script, tmp_path, monkeypatch)
    entry.wait_ready()
    for _ in range(2):
        outcome = entry.invoke(SAMPLE, headers=JSON)
        assert outcome.status == 200  # an error, answered as a success
        answer = json.loads(outcome.body)
        assert isinstance(answer, str) and "Invalid input of type: 'ndarray'" in answer, answer
    assert redis_server.client().dbsize() == 0  # nothing is ever written to the cache


def test_the_example_scores_and_caches_in_a_real_redis(example, serve, redis_server, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("RedisConnectionString", redis_server.url())
    host = serve(example(EXAMPLE.name))  # a copy: serve packages into the repo's build/
    answers = [httpx.post(f"{host.url}/api/score", content=SAMPLE, headers=JSON, timeout=60) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [a.headers["x-modelfunc-cache"] for a in answers] == ["miss", "hit"]
    assert answers[0].content == answers[1].content and json.loads(answers[1].content) == EXPECTED
    (key,) = redis_server.client().keys("modelfunc:http:*")
    assert redis_server.client().get(key) == answers[0].content
    assert 3590 <= redis_server.client().ttl(key) <= 3600  # `cache: redis` takes the defaults: an hour
    stats = host.status()["cache"]
    assert (stats["state"], stats["hits"], stats["misses"], stats["stored"]) == ("up", 1, 1, 1)
    # an input of the wrong shape: inference-schema refuses it (400), and nothing is cached for it
    bad = httpx.post(f"{host.url}/api/score", content=b'{"data": [[1, 2, 3]]}', headers=JSON, timeout=60)
    assert bad.status_code == 400 and "input schema" in bad.json()["message"], bad.text
    assert len(redis_server.client().keys("modelfunc:http:*")) == 1
