"""@rawhttp: reads an HTML form and uploaded files (multipart/form-data)."""
import hashlib

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    files = {
        name: {"filename": f.filename, "type": f.mimetype, "sha256": hashlib.sha256(f.read()).hexdigest()}
        for name, f in request.files.items()
    }
    return AMLResponse({"form": request.form.to_dict(flat=False), "files": files}, 200, json_str=True)
