"""inference-schema's documented wrapper: a single parameter holding a dict of typed inputs."""
import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

numpy_sample = NumpyParameterType(np.array([[1, 2]], dtype="int64"))
pandas_sample = PandasParameterType(pd.DataFrame({"k": ["a"], "v": [1.5]}))
sample = StandardPythonParameterType({"input1": numpy_sample, "input2": pandas_sample})


def init():
    pass


@input_schema("Inputs", sample)
@output_schema(StandardPythonParameterType({"total": 3.0}))
def run(Inputs):
    return {"total": float(Inputs["input1"].sum() + Inputs["input2"]["v"].sum())}
