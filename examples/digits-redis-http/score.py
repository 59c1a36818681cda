"""The Azure docs' Redis entry script (Deploy a machine learning model to Azure Functions with Azure Cache for Redis),
fixed. The cache it wrote by hand is `cache: redis` in modelfunc.yaml; README.md shows the original and what changed."""

import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

input_sample = np.zeros((1, 64))  # any number of 8x8 digit images, flattened (gray levels 0-16)
output_sample = np.array([0])  # the digit each image shows


def init():
    global model
    model_path = os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_mnist_model.pkl')
    model = joblib.load(model_path)


@input_schema('data', NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    # You can return any data type, as long as it is JSON serializable.
    return model.predict(data).tolist()
