"""inference-schema pandas in and out; run() returns the DataFrame (the output schema does not convert it)."""
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema, output_schema

sample = pd.DataFrame({"a": [1, 2], "b": [3, 4]})


def init():
    pass


@input_schema("data", PandasParameterType(sample))
@output_schema(PandasParameterType(sample))
def run(data):
    return data * 2
