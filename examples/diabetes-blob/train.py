"""Train the example model: a ridge regression on 10 standardized features, numpy only.

The data is synthetic (a fixed seed, 442 rows like the classic diabetes set) so the example needs
no download. Run `python train.py` to rewrite model/model.json.
"""

import json
from pathlib import Path

import numpy as np

rng = np.random.default_rng(442)
X = rng.normal(size=(442, 10))
true_coef = np.array([0.5, -11.4, 24.7, 15.4, -37.7, 22.7, 4.8, 8.4, 35.7, 3.2])
y = X @ true_coef + 152.1 + rng.normal(scale=5.0, size=442)

alpha = 1.0
Xc, yc = X - X.mean(axis=0), y - y.mean()
coef = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(10), Xc.T @ yc)
intercept = float(y.mean() - X.mean(axis=0) @ coef)

out = Path(__file__).with_name("model") / "model.json"
out.write_text(json.dumps({"coef": [round(c, 6) for c in coef], "intercept": round(intercept, 6)}, indent=2) + "\n")
print(f"wrote {out}")
