"""The pattern of many Azure ML samples: catch every error and return its text."""
import json


def init():
    pass


def run(raw_data):
    try:
        data = json.loads(raw_data)["data"]
        return {"result": [sum(row) for row in data]}
    except Exception as e:
        return {"error": str(e)}
