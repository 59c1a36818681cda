"""run() answers a pandas DataFrame as it is (JSON cannot serialise it)."""
import json

import pandas as pd


def init():
    pass


def run(data):
    frame = pd.DataFrame(json.loads(data)["data"])
    return frame.describe()
