"""run() raises for input it does not expect (here: rows of the wrong width)."""
import json

import numpy as np

WEIGHTS = np.array([0.5, -1.0, 2.0])


def init():
    pass


def run(data):
    rows = np.asarray(json.loads(data)["data"], dtype=float)
    if rows.ndim != 2 or rows.shape[1] != 3:
        raise ValueError(f"expected rows of 3 features, got shape {rows.shape}")
    return (rows @ WEIGHTS).tolist()
