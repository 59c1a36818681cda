"""@rawhttp returning plain Python values (not a response): None, a list, a str, by query."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    kind = request.args.get("kind", "dict")
    if kind == "none":
        return None
    if kind == "list":
        return [1, 2, 3]
    if kind == "str":
        return "plain text"
    return {"kind": kind, "length": request.content_length}
