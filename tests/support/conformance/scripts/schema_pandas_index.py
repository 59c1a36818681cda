"""inference-schema with a pandas DataFrame input in orient index."""
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema

sample = pd.DataFrame({"height": [1.8, 1.6], "weight": [80.0, 55.0]}, index=["r1", "r2"])


def init():
    pass


@input_schema("data", PandasParameterType(sample, orient="index"))
def run(data):
    return {"bmi": (data["weight"] / data["height"] ** 2).round(2).to_dict()}
