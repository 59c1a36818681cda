"""Several inference-schema parameters, one with a default (the Azure ML docs' multi-input pattern)."""
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("features", NumpyParameterType(np.array([[0.1, 0.2]])))
@input_schema("threshold", StandardPythonParameterType(0.5))
@input_schema("labels", StandardPythonParameterType(["no", "yes"]))
@output_schema(StandardPythonParameterType({"labels": ["yes"]}))
def run(features, threshold=0.5, labels=["no", "yes"]):  # noqa: B006 - the default must fit the schema
    scores = features.mean(axis=1)
    return {"labels": [labels[int(s > threshold)] for s in scores], "threshold": threshold}
