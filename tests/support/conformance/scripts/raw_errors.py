"""@rawhttp: answers errors itself (400, 500 with a message) or raises."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    mode = request.args.get("mode", "")
    if mode == "400":
        return AMLResponse({"error": "bad input"}, 400, json_str=True)
    if mode == "500":
        return AMLResponse("model crashed", 500)
    if mode == "503":
        return AMLResponse("warming up", 503, {"Retry-After": "5"})
    if mode == "raise":
        raise RuntimeError("boom")
    return AMLResponse("fine", 200)
