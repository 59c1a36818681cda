"""run() echoes text with non-ASCII characters."""
import json


def init():
    pass


def run(data):
    payload = json.loads(data)
    return {"greeting": "héllo wörld ✓", "echo": payload, "length": len(data)}
