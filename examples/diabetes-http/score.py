"""AML entry script with inference-schema: run() receives `data` as a numpy array."""

import json
import os

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")) as f:
        model = json.load(f)


@input_schema("data", NumpyParameterType(np.array([[0.1] * 10])))  # any number of rows of 10 features
@output_schema(NumpyParameterType(np.array([152.0])))
def run(data):
    return (data @ np.asarray(model["coef"]) + model["intercept"]).round(4).tolist()
