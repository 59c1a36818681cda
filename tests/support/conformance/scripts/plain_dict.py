"""A linear model over JSON rows; run() answers a dict (the most common Azure ML entry script)."""
import json
import os

model = None


def init():
    global model
    with open(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.json")) as f:
        model = json.load(f)


def run(raw_data):
    data = json.loads(raw_data)["data"]
    predictions = []
    for row in data:
        predictions.append(sum(w * x for w, x in zip(model["coef"], row, strict=True)) + model["intercept"])
    return {"predictions": predictions, "model": model["name"]}
