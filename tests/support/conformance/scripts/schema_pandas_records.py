"""inference-schema with a pandas DataFrame input (orient records), answering a list."""
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

sample = pd.DataFrame({"age": [30, 40], "income": [1000.0, 2500.5], "city": ["Oslo", "Lima"]})


def init():
    pass


@input_schema("data", PandasParameterType(sample, orient="records"))
@output_schema(StandardPythonParameterType([1.0]))
def run(data):
    return (data["income"] / data["age"]).round(3).tolist()
