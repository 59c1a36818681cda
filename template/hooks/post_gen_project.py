"""Say what to do next. Nothing here changes the generated files; values arrive as data, as in the pre hook."""

from __future__ import annotations

import json

VALUES = json.loads({{ cookiecutter | tojson | tojson }})  # noqa: F821 - Jinja, rendered before this runs

print(
    f"\nCreated {VALUES['__project_slug']}/ ({VALUES['trigger']} trigger). Next:\n"
    f"  cd {VALUES['__project_slug']}\n"
    "  python -m pip install -r requirements-dev.txt\n"
    "  python -m pytest\n"
    "  modelfunc up .\n"
    "README.md explains the Azure set-up the workflow needs."
)
