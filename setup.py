"""The wheel carries two things that live outside generator/ in the repository (issue 15, "the wheel is the product"):

* ``template/`` (the cookiecutter template ``modelfunc new`` runs), as ``modelfunc/template``;
* ``package.json`` and ``package-lock.json`` (the Azurite version modelfunc installs on first need), as
  ``modelfunc/node``.

They stay at the top of the repository, where ``cookiecutter <repo> --directory template`` and ``npm ci`` expect
them; the build copies them into the package. An editable install (``pip install -e .``) copies nothing: there
modelfunc finds them in its checkout. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = {"template": "template", "package.json": "node/package.json", "package-lock.json": "node/package-lock.json"}


class BuildWithBundledFiles(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        package = Path(self.build_lib) / "modelfunc"
        for source, target in BUNDLED.items():
            src, dst = ROOT / source, package / target
            if not src.exists():
                raise FileNotFoundError(f"{src} is missing: the wheel must carry it (see setup.py)")
            if src.is_dir():
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildWithBundledFiles})
