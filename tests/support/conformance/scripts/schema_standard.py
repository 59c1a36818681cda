"""inference-schema with standard Python types (a dict of lists), no output schema."""
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema

sample = StandardPythonParameterType({"text": ["a"], "top_k": 1})


def init():
    pass


@input_schema("data", sample)
def run(data):
    texts = data["text"]
    return {"lengths": [len(t) for t in texts], "top_k": data.get("top_k", 1)}
