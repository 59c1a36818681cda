"""@rawhttp: 204 for an accepted event, 304 when the caller's ETag still matches, AMLResponse(None) otherwise."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    if request.headers.get("If-None-Match") == '"v1"':
        return AMLResponse(None, 304, {"ETag": '"v1"'})
    if request.method == "POST":
        return AMLResponse(None, 204)
    return AMLResponse(None, 200)
