"""@rawhttp: answers with the status and headers the caller asks for (AMLResponse's header dict)."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    status = int(request.args.get("status", "200"))
    headers = {"X-Model-Version": "7", "Cache-Control": "no-cache, no-store"}
    if request.args.get("ctype"):
        headers["Content-Type"] = request.args["ctype"]
    if status in (204, 304):
        return AMLResponse(None, status, headers)
    return AMLResponse(f"status {status}", status, headers)
