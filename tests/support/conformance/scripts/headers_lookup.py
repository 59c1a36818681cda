"""run() takes request_headers and reads a few of them, in the spellings users write."""
import json


def init():
    pass


def run(data, request_headers):
    payload = json.loads(data) if data else {}
    return {
        "unit_title": request_headers.get("X-Unit"),
        "unit_lower": request_headers.get("x-unit"),
        "test": request_headers.get("X-Test"),
        "content_type": request_headers.get("Content-Type"),
        "has_length": "Content-Length" in request_headers,
        "chunked": request_headers.get("Transfer-Encoding"),
        "type": type(request_headers).__name__,
        "n": len(payload.get("data", [])) if isinstance(payload, dict) else None,
    }
