"""inference-schema together with request_headers."""
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", StandardPythonParameterType([1, 2]))
def run(data, request_headers):
    return {"sum": sum(data), "unit": request_headers.get("X-Unit", "none")}
