"""run() answers a DataFrame converted the way the Azure ML docs show: to_dict / to_json."""
import json

import pandas as pd


def init():
    pass


def run(data):
    frame = pd.DataFrame(json.loads(data)["data"], columns=["a", "b", "c"])
    frame["total"] = frame.sum(axis=1)
    return {"records": frame.to_dict(orient="records"), "json": frame.to_json(orient="split")}
