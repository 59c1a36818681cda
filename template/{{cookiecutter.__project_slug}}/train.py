"""Train the model: a ridge regression on the diabetes data set that scikit-learn ships (no download).

    python train.py                  # rewrites model/model.pkl
    python train.py --out other.pkl  # writes elsewhere (the tests use this to check it reproduces)

The 10 features of load_diabetes() come mean-centred and scaled. Keep scikit-learn at the version pinned in
environment.yml: a pickled model is loaded by the version that wrote it. Retrain after changing either, then
run score.py on samples/input.json and put the output in samples/expected.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

MODEL_FILE = Path(__file__).resolve().parent / "model" / "model.pkl"
ALPHA = 0.1


def train() -> Ridge:
    features, target = load_diabetes(return_X_y=True)
    return Ridge(alpha=ALPHA).fit(features, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_FILE, help="where to write the model (default: %(default)s)")
    args = parser.parse_args(argv)
    model = train()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, args.out)
    print(f"wrote {args.out} (R^2 on the training data: {model.score(*load_diabetes(return_X_y=True)):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
