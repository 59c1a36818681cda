"""@rawhttp: answers binary data (a PNG header and every byte value) with its own content type."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    if request.args.get("echo") == "1":
        return AMLResponse(request.get_data(), 200, {"Content-Type": "application/octet-stream"})
    return AMLResponse(PNG, 200, {"Content-Type": "image/png"})
