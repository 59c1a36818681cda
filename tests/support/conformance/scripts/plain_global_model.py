"""init() loads a pickled model from AZUREML_MODEL_DIR into a global, run() uses it."""
import json
import os
import pickle

model = None


def init():
    global model
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pkl")
    with open(model_path, "rb") as f:
        model = pickle.load(f)


def run(data):
    rows = json.loads(data)["data"]
    return {"predictions": [model["bias"] + sum(model["weights"][i] * v for i, v in enumerate(r)) for r in rows]}
