"""@rawhttp: answers CORS preflight (OPTIONS) itself, and scores POST."""
import json

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS"}


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    if request.method == "OPTIONS":
        return AMLResponse("", 200, CORS)
    payload = json.loads(request.get_data(as_text=True) or "{}")
    return AMLResponse(json.dumps({"n": len(payload.get("data", []))}), 200,
                       {"Access-Control-Allow-Origin": "*", "Content-Type": "application/json"})
