"""run() answers NaN and infinity (json.dumps writes them, though JSON has no such numbers)."""
import json
import math


def init():
    pass


def run(data):
    rows = json.loads(data)["data"]
    return {"missing": math.nan, "limit": math.inf, "n": len(rows)}
