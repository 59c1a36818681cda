"""The entry script imports a package the environment does not have."""
import json

import not_installed_scoring_helpers  # noqa: F401


def init():
    pass


def run(data):
    return json.loads(data)
