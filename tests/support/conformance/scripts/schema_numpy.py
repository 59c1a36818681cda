"""inference-schema with numpy input and output, as the Azure ML docs' example."""
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

input_sample = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
output_sample = np.array([6.0, 15.0])


def init():
    pass


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    return data.sum(axis=1).tolist()
