"""@rawhttp: answers with flask.send_file (a CSV built in memory) and make_response."""
import io

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from flask import make_response, send_file


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    if request.args.get("kind") == "made":
        return make_response(("made here", 202, {"X-Made": "yes"}))
    csv = b"id,score\n1,0.5\n2,0.75\n"
    return send_file(io.BytesIO(csv), mimetype="text/csv", as_attachment=True, download_name="scores.csv")
