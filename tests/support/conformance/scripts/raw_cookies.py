"""@rawhttp: sets two cookies and repeated header values on a flask Response."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    response = AMLResponse({"session": "started"}, 200, json_str=True)
    response.headers.add("Set-Cookie", "session=abc123; Path=/")
    response.headers.add("Set-Cookie", "theme=dark")
    response.headers.add("Vary", "Accept")
    response.headers.add("Vary", "X-Unit")
    return response
