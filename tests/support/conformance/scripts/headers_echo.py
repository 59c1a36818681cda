"""run() echoes the request headers it was given whose names start with x-test or x-unit."""


def init():
    pass


def run(data, request_headers):
    return {k: v for k, v in request_headers.items() if k.lower().startswith(("x-test", "x-unit"))}
