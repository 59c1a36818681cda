"""The root of the suite. Tests live in folders by subject (unit, render, host, image, azure, action, template), each
with a conftest.py of the fixtures only its subject needs; what several folders use is in support/ (importable as
``support``: pytest's ``pythonpath = ["tests"]``), its fixtures loaded here as plugins."""

pytest_plugins = [
    "support.plugin",  # example, azurite, serve, step, arm, arm_server, id_server, docker_engine
    "support.secrets_guard",  # every secret the suite creates is looked for in every output, log and summary
]
