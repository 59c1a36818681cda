"""run() treats the body as text, not JSON (CSV lines)."""


def init():
    pass


def run(data):
    lines = [line for line in data.splitlines() if line.strip()]
    return {"lines": len(lines), "first": lines[0] if lines else None, "chars": len(data)}
