"""Azure ML entry script: init() loads the model once, run(raw_data) scores one request.

modelfunc runs it as Azure ML does: AZUREML_MODEL_DIR points at model/, and run() receives the request
body (or the input blob) as a JSON string: {"data": [[10 numbers], ...]}, one row per prediction.
"""

import json
import os

import joblib
import numpy as np

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))


def run(raw_data):
    data = np.asarray(json.loads(raw_data)["data"], dtype=float)
    return model.predict(data).tolist()
