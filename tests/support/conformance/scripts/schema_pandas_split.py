"""inference-schema with a pandas DataFrame input in orient split, returning a dict."""
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema

sample = pd.DataFrame([[1, 2.5], [3, 4.5]], columns=["x", "y"])


def init():
    pass


@input_schema("data", PandasParameterType(sample, orient="split"))
def run(data):
    return {"columns": list(data.columns), "sum_y": float(data["y"].sum()), "rows": int(len(data))}
