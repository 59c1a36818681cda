"""run() answers a list, as scikit-learn examples do with predict(...).tolist()."""
import json

import numpy as np


def init():
    pass


def run(data):
    rows = np.array(json.loads(data)["data"], dtype=float)
    return (rows.sum(axis=1) * 2).tolist()
