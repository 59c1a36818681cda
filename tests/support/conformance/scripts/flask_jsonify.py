"""run() answers with flask.jsonify and flask.make_response (status and headers of its own)."""
import json

from flask import jsonify, make_response


def init():
    pass


def run(data):
    payload = json.loads(data)
    if not payload.get("data"):
        return make_response(jsonify(error="no rows"), 422, {"X-Reason": "empty"})
    response = jsonify(rows=len(payload["data"]), first=payload["data"][0])
    response.headers["X-Rows"] = str(len(payload["data"]))
    return response
