"""init() fails: the model file it needs is missing."""
import os

model = None


def init():
    global model
    with open(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "missing-model.pkl"), "rb") as f:
        model = f.read()


def run(data):
    return {"ok": True}
