"""@rawhttp: GET reads the query string, POST the JSON body, anything else is refused with 405."""
import json

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    if request.method == "GET":
        return {"echo": request.args.get("echo", ""), "all": request.args.getlist("id")}
    if request.method == "POST":
        try:
            payload = json.loads(request.get_data(as_text=True))
        except ValueError as e:
            return AMLResponse(f"bad JSON: {e}", 400)
        return {"keys": sorted(payload) if isinstance(payload, dict) else None}
    return AMLResponse("method not allowed", 405)
