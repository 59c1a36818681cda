"""run() answers a set and a datetime: not JSON serialisable."""
import datetime
import json


def init():
    pass


def run(data):
    rows = json.loads(data)["data"]
    return {"labels": {len(r) for r in rows}, "at": datetime.datetime(2024, 1, 2, 3, 4, 5)}
