"""run() answers a numpy array without .tolist() (a frequent first attempt)."""
import json

import numpy as np


def init():
    pass


def run(data):
    return np.asarray(json.loads(data)["data"], dtype=float) * 0.5
