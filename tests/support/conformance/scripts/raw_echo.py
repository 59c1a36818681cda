"""@rawhttp: describe the request run() was given (method, query, selected headers, body, client address)."""
import hashlib

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    body = request.get_data()
    summary = {
        "method": request.method,
        "args": request.args.to_dict(flat=False),
        "x_test": request.headers.getlist("X-Test"),
        "unit": request.headers.get("x-unit"),
        "content_type": request.content_type,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "is_json": request.is_json,
        "remote_addr_set": bool(request.remote_addr),
        "path_ends_with_score": request.path.rstrip("/").endswith("score"),
    }
    return AMLResponse(summary, 200, json_str=True)
