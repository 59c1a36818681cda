"""Every Python the Functions images run, 3.13 included: accepted in ``python_version``, the base image that follows it,
wheels resolved for it (pip --python-version, so no local interpreter of that version is needed), the template's
choice."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
import yaml
from modelfunc import bytecode
from modelfunc.config import SUPPORTED_PYTHON, load_project
from support.core import run_modelfunc
from support.template import bake

SITE = "home/site/wwwroot/.python_packages/lib/site-packages/"


def with_python(repo: Path, version: str, requirements: list[str]) -> Path:
    config = yaml.safe_load((repo / "modelfunc.yaml").read_text())
    (repo / "modelfunc.yaml").write_text(yaml.safe_dump({**config, "python_version": version}, sort_keys=False))
    pip = "".join(f"      - {r}\n" for r in requirements)
    (repo / "environment.yml").write_text(f"dependencies:\n  - python={version}\n  - pip\n  - pip:\n{pip}")
    return repo


def wheel_tags(layer: Path) -> dict[str, list[str]]:
    """{distribution: its WHEEL file's Tag lines} for every package in the dependencies layer."""
    tags = {}
    with tarfile.open(layer) as tar:
        for member in tar.getmembers():
            if member.name.startswith(SITE) and member.name.endswith(".dist-info/WHEEL"):
                text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                dist = member.name[len(SITE):].split(".dist-info")[0]
                tags[dist] = re.findall(r"^Tag: (\S+)$", text, re.M)
    return tags


def extension_modules(layer: Path) -> list[str]:
    with tarfile.open(layer) as tar:
        return [m.name for m in tar.getmembers() if m.name.startswith(SITE) and m.name.endswith(".so")]


def check_built_for(out: Path, version: str, binary: str) -> None:
    """The app's lock, its image's base and every wheel in its dependencies layer are for CPython ``version``."""
    nodot = version.replace(".", "")
    assert f"FROM mcr.microsoft.com/azure-functions/python:4-python{version}\n" in (out / "Dockerfile").read_text()
    lock = (out / "app" / "requirements.lock").read_text()
    assert f"# python-version: {version}\n" in lock
    tags = wheel_tags(out / "layers" / "dependencies.tar")
    assert any(d.lower().startswith(binary) for d in tags), sorted(tags)
    for dist, dist_tags in tags.items():
        assert dist_tags, dist
        for tag in dist_tags:
            python, abi, platform = tag.split("-")
            assert (abi, platform) == ("none", "any") or (
                python == f"cp{nodot}" and abi in (f"cp{nodot}", "abi3") and re.fullmatch(
                    r"manylinux(1|2010|2014|_2_\d+)_x86_64", platform)), (dist, tag)
        if dist.lower().startswith(binary):
            assert all(t.startswith(f"cp{nodot}-cp{nodot}-manylinux") for t in dist_tags), (dist, dist_tags)
    modules = extension_modules(out / "layers" / "dependencies.tar")  # compiled for this CPython, or abi3
    assert any(f".cpython-{nodot}-x86_64-linux-gnu.so" in m for m in modules), modules[:5]
    assert [m for m in modules if ".cpython-" in m and f".cpython-{nodot}-x86_64-linux-gnu.so" not in m] == []
    for name, pinned in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) ", lock, re.M):  # the lock is what the layer holds
        assert any(d.lower().replace("_", "-") == f"{name.lower().replace('_', '-')}-{pinned}".lower()
                   for d in tags), (name, pinned, sorted(tags))


@pytest.mark.parametrize("version", SUPPORTED_PYTHON)
def test_every_supported_python_is_accepted_and_picks_its_base_image(example, version: str) -> None:  # noqa: ANN001
    repo = with_python(example("diabetes-servicebus"), version, ["numpy"])
    project = load_project(repo)
    assert project.config.python_version == version
    assert project.default_base_image == f"mcr.microsoft.com/azure-functions/python:4-python{version}"


def test_python_3_13_written_as_a_yaml_number_is_3_13(example) -> None:  # noqa: ANN001
    repo = with_python(example("diabetes-servicebus"), "3.13", ["numpy"])
    (repo / "modelfunc.yaml").write_text((repo / "modelfunc.yaml").read_text().replace("'3.13'", "3.13"))
    assert "python_version: 3.13\n" in (repo / "modelfunc.yaml").read_text()
    assert load_project(repo).config.python_version == "3.13"


def test_a_python_3_13_app_packages_with_cp313_wheels(example, tmp_path: Path) -> None:  # noqa: ANN001
    """No Python 3.13 on this machine: the wheels are resolved for it (pip --python-version 3.13 --abi cp313)."""
    repo = with_python(example("diabetes-servicebus"), "3.13", ["numpy>=1.26", "azure-functions"])
    out = tmp_path / "out"
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr
    check_built_for(out, "3.13", binary="numpy")
    # The dependencies' bytecode is compiled by an interpreter of the image's version (bytecode.py), or left out.
    with tarfile.open(out / "layers" / "dependencies.tar") as tar:
        pycs = [n for n in tar.getnames() if n.endswith(".pyc")]
    if bytecode.find_compiler("3.13") is None:
        assert "no Python 3.13 on this machine to compile them to bytecode with" in result.stderr
        assert pycs == []
    else:
        assert pycs and all(n.endswith(".cpython-313.pyc") for n in pycs)


def test_the_template_offers_python_3_13_and_its_model_packages_for_it(tmp_path: Path) -> None:
    """The template's model was pickled by scikit-learn 1.9.1, which has cp313 wheels: a 3.13 project packages."""
    root = bake(tmp_path / "bake", python_version="3.13", trigger="http")
    project = load_project(root)
    assert project.config.python_version == "3.13"
    assert "  - python=3.13\n" in (root / "environment.yml").read_text()
    assert 'target-version = "py313"' in (root / "pyproject.toml").read_text()
    (step,) = [s for s in yaml.safe_load((root / ".github/workflows/deploy.yml").read_text())["jobs"]["deploy"]["steps"]
               if "modelfunc" in s.get("uses", "")]
    assert step["with"]["python-version"] == "3.13"  # modelfunc on the app's Python: the local run is the image's
    out = tmp_path / "out"
    result = run_modelfunc("package", str(root), "--no-build", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr
    check_built_for(out, "3.13", binary="scikit_learn")
    with tarfile.open(out / "layers" / "dependencies.tar") as tar:  # scikit-learn's own build, for 3.13
        wheel = tar.extractfile(next(m for m in tar.getmembers() if m.name.startswith(SITE + "scikit_learn-1.9.1")
                                     and m.name.endswith("/WHEEL")))
        assert "Tag: cp313-cp313-manylinux" in io.TextIOWrapper(wheel).read()  # type: ignore[arg-type]


def interpreter(version: str) -> str | None:
    """A CPython ``version`` on this machine: MODELFUNC_PYTHON_<3XX>, ``pythonX.Y`` on PATH, or a pyenv install."""
    import glob
    import os
    import shutil
    import subprocess

    candidates = [os.environ.get(f"MODELFUNC_PYTHON_{version.replace('.', '')}"), shutil.which(f"python{version}"),
                  *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))]
    for candidate in filter(None, candidates):
        proc = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return candidate
    return None


@pytest.mark.parametrize(("name", "function"), [("diabetes-http", "score"), ("diabetes-blob", "score_blob"),
                                                ("diabetes-servicebus", "score_message")])
def test_a_python_3_13_app_self_tests_on_cpython_3_13(example, tmp_path: Path, name: str, function: str) -> None:  # noqa: ANN001
    """The image's own check, without the image: its dependencies layer (cp313 wheels; today's resolution picks
    azure-functions 2.x, which needs Python 3.13) on a real CPython 3.13, the app's self-test through each trigger's
    function."""
    import json
    import subprocess

    python = interpreter("3.13")
    if python is None:
        pytest.skip("no CPython 3.13 here (MODELFUNC_PYTHON_313, python3.13 on PATH, or ~/.pyenv/versions/3.13.*)")
    repo = example(name)
    (repo / "environment.yml").write_text((repo / "environment.yml").read_text().replace("python=3.11", "python=3.13"))
    (repo / "modelfunc.yaml").write_text((repo / "modelfunc.yaml").read_text() + 'python_version: "3.13"\n')
    out = tmp_path / "out"
    result = run_modelfunc("package", str(repo), "--no-build", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr
    layer = tmp_path / "layer"
    with tarfile.open(out / "layers" / "dependencies.tar") as tar:
        tar.extractall(layer, filter="tar")
    proc = subprocess.run([python, "-m", "modelfunc_runtime", "selftest", str(repo / "samples" / "input.json"),
                           function], cwd=out / "app", capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(layer / SITE)}, stdin=subprocess.DEVNULL)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MODELFUNC-SELFTEST ")]
    assert len(lines) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    outcome = json.loads(lines[0].split(" ", 1)[1])
    assert outcome["ok"], outcome
    assert json.loads(outcome["body"]) == json.loads((repo / "samples" / "expected.json").read_text())
