"""A plain run() that reads flask's global request (query string, headers, method)."""
import json

from flask import request


def init():
    pass


def run(data):
    return {
        "method": request.method,
        "args": request.args.to_dict(flat=False),
        "unit": request.headers.get("X-Unit"),
        "json": request.get_json(silent=True),
        "data_len": len(data),
        "parsed": json.loads(data) if data.startswith("{") else None,
    }
