"""score.py, the model and the sample agree, and train.py makes the model that is committed."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import warnings
from pathlib import Path
from types import ModuleType

import joblib
import numpy as np
import pytest
import sklearn
import yaml
from sklearn.exceptions import InconsistentVersionWarning

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def score(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """score.py as Azure ML and modelfunc run it: AZUREML_MODEL_DIR set, init() called once."""
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(ROOT / "model"))
    module = load("score")
    module.init()
    return module


def test_score_py_gives_the_expected_output_for_the_sample(score: ModuleType) -> None:
    config = yaml.safe_load((ROOT / "modelfunc.yaml").read_text(encoding="utf-8"))
    tolerance = config["samples"]["tolerance"]
    actual = score.run((ROOT / config["samples"]["input"]).read_text(encoding="utf-8"))
    expected = json.loads((ROOT / config["samples"]["expected"]).read_text(encoding="utf-8"))
    assert json.loads(json.dumps(actual)) == pytest.approx(expected, rel=tolerance, abs=tolerance)


def test_score_py_rejects_rows_without_ten_features(score: ModuleType) -> None:
    with pytest.raises(ValueError, match="10 features"):
        score.run('{"data": [[1, 2, 3]]}')


def test_train_py_reproduces_the_committed_model(tmp_path: Path) -> None:
    out = tmp_path / "model.pkl"
    assert load("train").main(["--out", str(out)]) == 0
    committed, retrained = joblib.load(ROOT / "model" / "model.pkl"), joblib.load(out)
    assert type(retrained) is type(committed)
    assert retrained.get_params() == committed.get_params()
    np.testing.assert_allclose(retrained.coef_, committed.coef_, rtol=1e-9)
    np.testing.assert_allclose(retrained.intercept_, committed.intercept_, rtol=1e-9)


def test_the_model_was_pickled_by_the_scikit_learn_that_environment_yml_pins() -> None:
    pinned = re.search(r"scikit-learn==(\S+)", (ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert pinned, "environment.yml must pin scikit-learn==<version>: the model is a pickle"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        joblib.load(ROOT / "model" / "model.pkl")
    # scikit-learn warns when a pickle comes from another version, and names that version.
    other = [w.message for w in caught if isinstance(w.message, InconsistentVersionWarning)]
    trained_with = other[0].original_sklearn_version if other else sklearn.__version__
    assert trained_with == pinned.group(1)
    assert f"scikit-learn=={trained_with}\n" in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")


def test_the_model_file_stays_commit_sized() -> None:
    assert os.path.getsize(ROOT / "model" / "model.pkl") < 100_000
