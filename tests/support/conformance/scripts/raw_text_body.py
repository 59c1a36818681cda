"""@rawhttp: reads the body as text in the request's charset and answers plain text."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    text = request.get_data(as_text=True)
    return AMLResponse(f"{len(text)} characters, {len(text.split())} words", 200,
                       {"Content-Type": "text/plain; charset=utf-8"})
