"""inference-schema input; run() itself raises for a value it cannot handle."""
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", StandardPythonParameterType({"divisor": 1}))
def run(data):
    return {"result": 100 / data["divisor"]}
