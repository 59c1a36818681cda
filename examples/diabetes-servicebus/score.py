"""AML entry script: init() loads the model once, run(data) scores a JSON string."""

import json
import os

import numpy as np

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")) as f:
        model = json.load(f)


def run(data):
    rows = np.asarray(json.loads(data)["data"], dtype=float)
    return (rows @ np.asarray(model["coef"]) + model["intercept"]).round(4).tolist()
