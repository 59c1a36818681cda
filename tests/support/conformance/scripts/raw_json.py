"""@rawhttp: request.get_json() for the input, a plain dict back (the server wraps it as JSON)."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    payload = request.get_json(silent=True)
    if payload is None:
        return {"error": "send JSON", "content_type": request.content_type}
    return {"rows": len(payload.get("data", [])), "keys": sorted(payload)}
