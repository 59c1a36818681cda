"""The release workflow (.github/workflows/release.yml): its shape, and a dry run of its build-and-check job.

The dry run runs the build job's ``run:`` steps as the workflow writes them (read from the YAML, not copied), in
order, with bash as GitHub runs them (``bash --noprofile --norc -eo pipefail``), from a checkout (a copy of this
working tree's files, as actions/checkout gives them: the build writes into it), with RUNNER_TEMP in the test's
tmp dir and GITHUB_REF_NAME the tag of this version: the sdist and the wheel built, twine check, the
wheel in a fresh venv outside the checkout (`modelfunc --version`), and a model repo scaffolded from template/
through `modelfunc up --image off` with the wheel's modelfunc. The ``uses:`` steps stand in for themselves: the
checkout is that copy, setup-python is the Python running the tests, and upload-artifact's path must hold
the two files. The dry run is a module fixture: under pytest-xdist the module's tests go to one worker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import modelfunc
import pytest
import yaml
from support.act_harness import checkout
from support.core import ROOT
from support.template import TRIGGERS

RELEASE = ROOT / ".github" / "workflows" / "release.yml"
VERSION = modelfunc.__version__
PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")

# The dry run (in the first test that asks for it) builds, installs, and for each trigger makes a repo and runs its
# README's commands (pip install, pytest, `modelfunc up`): about four minutes, the first time on a machine longer.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.xdist_group("test_release")]


def workflow() -> dict:
    return yaml.safe_load(RELEASE.read_text(encoding="utf-8"))


def bash(script: str, env: dict[str, str], timeout: float, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def runner_env(tmp: Path, tag: str, workspace: Path = ROOT) -> dict[str, str]:
    """The variables a GitHub runner gives a step, for a push of `tag`; `python` is the one running the tests."""
    # Nor PYTHONDONTWRITEBYTECODE (set on this machine, not on GitHub's runner images): the job's venvs are installed
    # with --no-compile because Python keeps what it compiles; with it set, every process of the job compiled numpy,
    # pandas and scikit-learn again (the README step: 144 s of CPU instead of 124 here).
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
           and not k.startswith(("GITHUB_", "MODELFUNC_"))}
    # A GitHub runner pulls the Functions base image for `modelfunc up`'s image check; this machine reaches no image
    # registry, so the dry run's `up` leaves the image out (as on a machine without Docker): `tests/image/test_image.py`
    # builds and self-tests images from a local base instead.
    env["MODELFUNC_UP_IMAGE"] = "off"
    return {**env, "CI": "true", "RUNNER_TEMP": str(tmp), "GITHUB_REF_NAME": tag, "GITHUB_REF": f"refs/tags/{tag}",
            "GITHUB_REF_TYPE": "tag", "GITHUB_WORKSPACE": str(workspace), "GITHUB_REPOSITORY": "modelfunc/modelfunc",
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])}


def run_steps(steps: list[dict], tmp: Path, tag: str, workspace: Path,
              timeout: float = 1200) -> list[tuple[str, str]]:
    """Each `run:` step in order (its own env: added) in the checkout ``workspace``, stopping at the first failure;
    (name, output) of each."""
    done = []
    for step in steps:
        if "run" not in step:
            continue
        assert "${{" not in step["run"] and "${{" not in json.dumps(step.get("env", {})), step.get("name")
        proc = bash(step["run"], {**runner_env(tmp, tag, workspace), **step.get("env", {})}, timeout, cwd=workspace)
        done.append((step["name"], proc.stdout + proc.stderr))
        assert proc.returncode == 0, f"step {step['name']!r} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return done


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    """The build job, run once for the module."""
    tmp = tmp_path_factory.mktemp("release")
    steps = workflow()["jobs"]["build"]["steps"]
    [checkout_step] = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert steps.index(checkout_step) == 0  # the steps after it run in the checkout
    workspace = checkout(tmp_path_factory.mktemp("checkout"))
    outputs = dict(run_steps(steps, tmp, f"v{VERSION}", workspace))
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    dist = Path(upload["with"]["path"].replace("${{ runner.temp }}", str(tmp)))
    return {"tmp": tmp, "dist": dist, "outputs": outputs}


# ------------------------------------------------------------------------------------------- the dry run


def test_the_build_job_builds_checks_installs_and_runs_the_wheel(dry_run) -> None:
    dist, tmp, outputs = dry_run["dist"], dry_run["tmp"], dry_run["outputs"]
    files = sorted(p.name for p in dist.iterdir())
    assert files == [f"modelfunc-{VERSION}-py3-none-any.whl", f"modelfunc-{VERSION}.tar.gz"]
    said = re.sub(r"\s+", " ", re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(outputs.values())))  # twine's colours, wraps
    # twine wraps at 80 columns, inside a long path too (a worker's tmp dir under pytest-xdist): compared unwrapped
    unwrapped = re.sub(r"\s+", "", said)
    assert all(f"Checking{tmp}/dist/{name}:PASSED" in unwrapped for name in files), said
    # The wheel's modelfunc, from a venv of its own (not this checkout's editable install).
    wheel_venv = tmp / "wheel-venv"
    where = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", "import modelfunc; print(modelfunc.__file__)"],
                           capture_output=True, text=True, cwd=tmp, check=True).stdout.strip()
    assert Path(where).is_relative_to(wheel_venv), where
    assert f"modelfunc, version {VERSION}" in "\n".join(outputs.values())
    # For each trigger: a repo from the wheel's own template, its README's commands in a clean venv, `up` PASS.
    project_venv = tmp / "project-venv"
    for trigger in TRIGGERS:
        report = json.loads((tmp / f"up-{trigger}.json").read_text())
        assert report["passed"] is True, report
        assert f"PASS: {trigger} round trip" in said
        assert (tmp / "scaffold" / f"release-check-{trigger}" / "requirements-dev.txt").is_file()
    assert said.count(" passed in ") >= len(TRIGGERS)  # each repo's own pytest
    # modelfunc in the project venv came from requirements-dev.txt's pin: the wheel just built, not this checkout.
    shown = subprocess.run([str(project_venv / "bin" / "python"), "-m", "pip", "show", "-f", "modelfunc"],
                           capture_output=True, text=True, cwd=tmp, check=True).stdout
    assert f"Version: {VERSION}\n" in shown and "Editable project location" not in shown, shown
    assert "modelfunc/template/cookiecutter.json" in shown and "modelfunc/node/package-lock.json" in shown


def test_the_dry_run_runs_the_generated_readme_commands_as_written(dry_run) -> None:
    """The three commands of the generated README (its first sh block) are the ones the step runs, in that order."""
    readme = (dry_run["tmp"] / "scaffold/release-check-http/README.md").read_text(encoding="utf-8")
    block = re.search(r"## Three commands\n\n```sh\n(.*?)```", readme, re.S)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["python -m pip install -r requirements-dev.txt", "python -m pytest", "modelfunc up ."]
    [step] = [s for s in workflow()["jobs"]["build"]["steps"] if "README" in s.get("name", "")]
    lines = [line.strip() for line in step["run"].splitlines()]
    at = [next(i for i, line in enumerate(lines) if line.startswith(c)) for c in commands]
    assert at == sorted(at), lines


def test_a_tag_that_is_not_the_version_stops_the_build(tmp_path) -> None:
    steps = workflow()["jobs"]["build"]["steps"]
    first = next(s for s in steps if "run" in s)
    proc = bash(first["run"], runner_env(tmp_path, "v0.0.0-not-this"), timeout=60)
    assert proc.returncode == 1
    assert (f"::error::tag v0.0.0-not-this is not v{VERSION}, the version in generator/modelfunc/__init__.py"
            in proc.stdout)


def wheel_names(dry_run: dict) -> list[str]:
    [wheel] = dry_run["dist"].glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_the_wheel_carries_every_file_of_the_package(dry_run) -> None:
    """The runtime shim (modelfunc/runtime/*.py), the Jinja templates: every file under generator/modelfunc."""
    names = set(wheel_names(dry_run))
    source = {str(p.relative_to(ROOT / "generator")) for p in (ROOT / "generator/modelfunc").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert {n for n in source if n.startswith("modelfunc/runtime/") and n.endswith(".py")}
    assert {n for n in source if n.startswith("modelfunc/templates/")}
    assert source - names == set()


# What `modelfunc` needs from outside generator/ (setup.py copies it in): the template `modelfunc new` runs, and the
# lock of the Azurite version `modelfunc up` installs on first need. In the sdist too: the wheel is built from it.
OUTSIDE = {"template/cookiecutter.json": "modelfunc/template/cookiecutter.json",
           "template/hooks/pre_gen_project.py": "modelfunc/template/hooks/pre_gen_project.py",
           "template/{{cookiecutter.__project_slug}}/model/model.pkl":
               "modelfunc/template/{{cookiecutter.__project_slug}}/model/model.pkl",
           "package.json": "modelfunc/node/package.json",
           "package-lock.json": "modelfunc/node/package-lock.json"}


def test_the_wheel_and_the_sdist_carry_what_lives_outside_the_package(dry_run) -> None:
    names = set(wheel_names(dry_run))
    [wheel] = dry_run["dist"].glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        for source, packaged in OUTSIDE.items():
            assert z.read(packaged) == (ROOT / source).read_bytes(), packaged
    # every file of template/ that git tracks, and no bytecode
    tracked = subprocess.run(["git", "ls-files", "template"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked and {f"modelfunc/{t}" for t in tracked} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    [sdist] = dry_run["dist"].glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        inside = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert set(OUTSIDE) | {"setup.py", "MANIFEST.in"} <= inside


# ---------------------------------------------------------------------------------------------- its shape


def test_release_runs_on_version_tags_with_no_permission_but_where_a_job_needs_one() -> None:
    wf = workflow()
    assert wf[True] == {"push": {"tags": ["v*", "!v[0-9]+"]}}  # YAML 1.1 reads the key `on` as true
    assert wf["permissions"] == {}
    jobs = wf["jobs"]
    assert {name: job.get("permissions") for name, job in jobs.items()} == {
        "build": {"contents": "read"}, "publish": {"id-token": "write"}, "github-release": {"contents": "write"}}
    assert jobs["publish"]["needs"] == "build" and jobs["github-release"]["needs"] == "publish"
    assert jobs["publish"]["environment"]["name"] == "pypi"


def test_every_action_is_pinned_and_no_expression_is_inside_a_script() -> None:
    uses = []
    for name, job in workflow()["jobs"].items():
        assert job["timeout-minutes"] <= 30, name
        for step in job["steps"]:
            if "uses" in step:
                uses.append(step["uses"])
                assert PINNED.fullmatch(step["uses"]), step["uses"]
                if step["uses"].startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
            assert "${{" not in step.get("run", ""), (name, step.get("name"))
    text = RELEASE.read_text(encoding="utf-8")
    for action in {u.split("@")[0] for u in uses}:  # each pin says which release it is
        assert re.search(rf"uses: {re.escape(action)}@[0-9a-f]{{40}} # v\d+\.\d+\.\d+$", text, re.M), action
    publish = workflow()["jobs"]["publish"]["steps"]
    assert publish[-1]["uses"].startswith("pypa/gh-action-pypi-publish@")
    assert "password" not in publish[-1].get("with", {})  # trusted publishing: no token


def test_the_same_pins_as_the_other_workflows() -> None:
    """checkout and setup-python at the commits ci.yml uses, so one update moves them all."""
    ci = (ROOT / ".github/workflows/ci.yml").read_text(encoding="utf-8")
    release = RELEASE.read_text(encoding="utf-8")
    for action in ("actions/checkout", "actions/setup-python"):
        [pin] = set(re.findall(rf"uses: ({re.escape(action)}@[0-9a-f]{{40}})", ci))
        assert set(re.findall(rf"uses: ({re.escape(action)}@[0-9a-f]{{40}})", release)) == {pin}


def test_the_major_tag_moves_only_for_a_final_release() -> None:
    steps = {s.get("name"): s for s in workflow()["jobs"]["github-release"]["steps"]}
    release = steps["The release, with its generated notes and the files"]
    assert "gh release create" in release["run"] and "--generate-notes" in release["run"]
    move = steps["Move the major tag to the release"]
    assert release["env"] == move["env"] == {"GH_TOKEN": "${{ github.token }}"}
    final = re.compile(r"^v[0-9]+\.[0-9]+\.[0-9]+$")
    assert final.pattern in move["run"] and final.pattern in release["run"]
    assert 'major="${GITHUB_REF_NAME%%.*}"' in move["run"]
    for tag, moves in [("v1.2.3", True), ("v10.0.0", True), ("v1.3.0rc1", False), ("v2.0.0b2", False)]:
        assert bool(final.match(tag)) is moves, tag
    major = subprocess.run(["bash", "-c", 'x="${T%%.*}"; echo "$x"'], env={"T": "v1.2.3"}, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert major == "v1"


def test_the_release_workflow_is_schema_valid_and_zizmor_clean() -> None:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "NO_COLOR": "1"}
    schema = subprocess.run([str(bin_dir / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             str(RELEASE)], capture_output=True, text=True, timeout=120, env=env)
    assert schema.returncode == 0 and "ok -- validation done" in schema.stdout, schema.stdout + schema.stderr
    zizmor = subprocess.run([str(bin_dir / "zizmor"), "--offline", "--no-progress", str(RELEASE)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert zizmor.returncode == 0 and "No findings to report" in zizmor.stdout, zizmor.stdout + zizmor.stderr
