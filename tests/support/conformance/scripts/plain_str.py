"""run() answers a str: the server JSON-encodes it (a quoted string)."""
import json


def init():
    pass


def run(data):
    payload = json.loads(data)
    return "label-" + str(len(payload.get("data", [])))
