"""The cookiecutter template (template/): a new model repo that is green on the first run.

Every trigger × cache choice is baked once (module fixture) and then checked as a user would: the exact
file set, nothing left unrendered, the generated repo's own pytest and ruff, its workflow against GitHub's
workflow schema (check-jsonschema's vendored copy) and zizmor, and `modelfunc up` end to end per trigger.
Bad values stop generation with a message naming the field, the rule and a good value, and leave nothing
behind; values with quotes, braces or backslashes never run as code. The `cache:` section of modelfunc.yaml
(what the template's Redis choice writes) is checked in tests/render/test_cache_config.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import modelfunc
import pytest
import yaml
from cookiecutter.main import cookiecutter
from modelfunc.config import load_project
from support.cases.template import (
    BAD_VALUES,
)
from support.core import ROOT, run_modelfunc
from support.template import MATRIX, PROJECT_TEMPLATE, TEMPLATE, TRIGGERS, bake, cookiecutter_config, temp_dir

# The template's model is a scikit-learn pickle (the test extra installs the version that wrote it).
# Found, not imported: importing scikit-learn here would cost every pytest process (each xdist worker collects every
# module) about 2 s of CPU; the one test that loads the model imports it.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                reason="pip install -e '.[test]' installs scikit-learn")

BIN = Path(sys.executable).parent
SLUG = "diabetes-scorer"  # from the default project name, "Diabetes Scorer"
FILES = {
    ".github/workflows/deploy.yml",
    ".github/zizmor.yml",
    ".gitignore",
    "README.md",
    "environment.yml",
    "model/model.pkl",
    "modelfunc.yaml",
    "pyproject.toml",
    "requirements-dev.txt",
    "samples/expected.json",
    "samples/input.json",
    "score.py",
    "tests/test_model.py",
    "tests/test_package.py",
    "train.py",
}
# A third-party action pinned by full commit SHA, with the version it is in a comment.
SHA_PINNED = re.compile(r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # v\d+\.\d+\.\d+$")
# Template syntax that survived rendering. GitHub's own `${{ ... }}` expressions are meant to be there.
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|\{#|cookiecutter\.")
# Tools must not leave caches in the baked repos (the file-set check runs on them too). A generated repo's pytest
# runs with the plugins its requirements-dev.txt brings (none), not the ones this suite's venv has.
QUIET_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "RUFF_NO_CACHE": "true", "PYTEST_ADDOPTS": "-p no:cacheprovider",
             "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def files_of(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def run(cmd: list[str], cwd: Path | None = None, *, timeout: float = 600, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          env={**os.environ, **QUIET_ENV, **(env or {})})


def bake_cli(out: Path, *args: str, input: str | None = None, no_input: bool = True
             ) -> subprocess.CompletedProcess[str]:
    """Run the cookiecutter command line (in a child process, as a user would); ``input`` answers the prompts."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "cookiecutter", str(ROOT), "--directory", "template", "--output-dir", str(out),
           "--config-file", str(cookiecutter_config(out.parent))]
    no_input = no_input and input is None
    return run([*cmd, *(["--no-input"] if no_input else []), *args], input=input, timeout=120,
               env={"TMPDIR": str(out.parent)})


class Baked:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = files_of(root)  # right after generation, before any tool runs in it


class BakedOnce(dict):
    """``baked[trigger, cache]``: that choice baked the first time a test asks for it, then kept for the module (under
    pytest-xdist a worker bakes only the choices of the tests it is given)."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.factory = factory

    def __missing__(self, key: tuple[str, str]) -> Baked:
        assert key in MATRIX, key
        trigger, cache = key
        root = bake(self.factory.mktemp(f"bake-{trigger}-{cache}") / "out", trigger=trigger, cache=cache)
        self[key] = Baked(root)
        return self[key]


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory) -> BakedOnce:
    """Every trigger × cache choice, each baked once for the whole module."""
    return BakedOnce(tmp_path_factory)


def workflow(root: Path) -> dict:
    return yaml.safe_load((root / ".github/workflows/deploy.yml").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------- every combination


@pytest.mark.parametrize(("trigger", "cache"), MATRIX)
def test_bakes_the_exact_file_set_with_nothing_left_unrendered(baked, trigger: str, cache: str) -> None:
    project = baked[trigger, cache]
    assert project.root.name == SLUG
    assert project.files == FILES
    for rel in sorted(FILES - {"model/model.pkl"}):
        text = (project.root / rel).read_text(encoding="utf-8")
        leftover = UNRENDERED.search(text)
        assert leftover is None, f"{rel}: {text[max(leftover.start() - 60, 0):leftover.end() + 60]!r}"
    # The model is copied byte for byte, never rendered.
    assert (project.root / "model/model.pkl").read_bytes() == (PROJECT_TEMPLATE / "model/model.pkl").read_bytes()


@pytest.mark.parametrize(("trigger", "cache"), MATRIX)
def test_generated_modelfunc_yaml_has_the_chosen_trigger_and_cache(baked, trigger: str, cache: str) -> None:
    project = load_project(baked[trigger, cache].root)
    assert project.name == SLUG
    assert project.trigger.type == trigger
    assert project.config.python_version == "3.11"
    if trigger == "blob":
        assert (project.trigger.input_path, project.trigger.output_path) == (
            "input/{blobname}.json", "output/{blobname}_out.json")
    if trigger == "http":
        assert project.trigger.auth_level == "function"
    if cache == "redis":
        assert project.config.cache.redis.connection == "RedisConnectionString"
        assert project.config.cache.redis.ttl_seconds == 3600
    else:
        assert project.config.cache is None
    readme = (project.root / "README.md").read_text(encoding="utf-8")
    assert ("RedisConnectionString" in readme) == (cache == "redis")


@pytest.mark.parametrize(("trigger", "cache"), MATRIX)
def test_generated_repo_own_pytest_passes(baked, trigger: str, cache: str) -> None:
    """The generated tests: score.py scores the sample, train.py reproduces the model, the package scores it."""
    proc = run([sys.executable, "-m", "pytest", "-q"], cwd=baked[trigger, cache].root)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"^7 passed in ", proc.stdout, re.MULTILINE), proc.stdout[-2000:]


@pytest.mark.parametrize(("trigger", "cache"), MATRIX)
def test_generated_repo_is_ruff_clean(baked, trigger: str, cache: str) -> None:
    root = baked[trigger, cache].root
    for args in (["check", "."], ["format", "--check", "."]):
        proc = run([sys.executable, "-m", "ruff", *args], cwd=root)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("trigger", "cache"), MATRIX)
def test_generated_workflow_validates_against_github_workflow_schema(baked, trigger: str, cache: str) -> None:
    path = baked[trigger, cache].root / ".github/workflows/deploy.yml"
    proc = run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


@pytest.mark.parametrize(("trigger", "cache"), MATRIX)
def test_generated_workflow_has_no_zizmor_findings(baked, trigger: str, cache: str) -> None:
    root = baked[trigger, cache].root
    proc = run([str(BIN / "zizmor"), "--offline", "--format", "json", "."], cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []
    # The audit is live: without the repo's .github/zizmor.yml the tag-pinned modelfunc action is a finding.
    strict = run([str(BIN / "zizmor"), "--offline", "--no-config", "--format", "json", "."], cwd=root)
    findings = json.loads(strict.stdout)
    assert [f["ident"] for f in findings] == ["unpinned-uses"], strict.stdout


@pytest.mark.parametrize(("trigger", "cache"), MATRIX)
def test_generated_workflow_deploys_with_oidc_and_one_modelfunc_step(baked, trigger: str, cache: str) -> None:
    root = baked[trigger, cache].root
    flow = workflow(root)
    on = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["push"] == {"branches": ["main"]}
    assert set(on["workflow_dispatch"]["inputs"]) == {"target", "slot-name", "skip-blob-test"}
    assert flow["permissions"] == {}
    (job,) = flow["jobs"].values()
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
    steps = job["steps"]
    assert not any("run" in step for step in steps)  # nothing a template-injection could reach
    assert not any(s["uses"].startswith("azure/login@") for s in steps)  # the action signs in with OIDC itself
    ours = [s for s in steps if s["uses"] == "modelfunc/modelfunc@v1"]
    assert len(ours) == 1
    assert {k: v for k, v in ours[0]["with"].items() if k.endswith("-id")} == {
        "client-id": "${{ vars.AZURE_CLIENT_ID }}", "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
        "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}"}
    assert ours[0]["with"]["app-name"] == "${{ vars.AZURE_FUNCTIONAPP_NAME || env.AZURE_FUNCTIONAPP_NAME }}"
    assert ours[0]["with"]["run-blob-test"] == "${{ !inputs.skip-blob-test }}"
    assert flow["env"]["AZURE_FUNCTIONAPP_NAME"] == SLUG
    # Every other action is pinned by full commit SHA with its version in a comment.
    lines = [ln for ln in (root / ".github/workflows/deploy.yml").read_text().splitlines() if "uses:" in ln]
    third_party = [ln for ln in lines if "modelfunc/modelfunc" not in ln]
    assert len(third_party) == 1
    pins = {m["action"]: m["sha"] for m in (SHA_PINNED.match(ln) for ln in third_party) if m}
    assert pins == {"actions/checkout": "08c6903cd8c0fde910a37f88322edcfb5dd907a8"}


def test_the_template_points_at_the_modelfunc_it_came_with(tmp_path) -> None:
    """requirements-dev.txt pins exactly this modelfunc (from PyPI) and the workflow's action is this repository at
    the same major tag (the tag the release workflow moves): a version bump that forgets the template fails here."""
    raw = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    assert raw["_modelfunc_version"] == modelfunc.__version__
    root = bake(tmp_path / "pin", trigger="http")
    major = modelfunc.__version__.split(".")[0]
    assert f"\nmodelfunc=={modelfunc.__version__}\n" in (root / "requirements-dev.txt").read_text()
    steps = [s for job in workflow(root)["jobs"].values() for s in job["steps"]]
    assert [s["uses"] for s in steps if "modelfunc" in s.get("uses", "")] == [f"modelfunc/modelfunc@v{major}"]
    release = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    moved = release["jobs"]["github-release"]["steps"][-1]["run"]
    assert 'major="${GITHUB_REF_NAME%%.*}"' in moved  # v1.2.3 -> v1: the tag the template's action_ref names


def test_every_other_answer_reaches_the_files(tmp_path) -> None:
    """Non-default answers land where they belong (checked without running the generated tests)."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    root = bake(tmp_path / "blob", project_name="Churn Model", trigger="blob", python_version="3.12",
                blob_input_path="scoring-in/{blobname}.json", blob_output_path="scoring-out/{blobname}.result.json",
                app_name="churn-scorer-prod", resource_group="rg-ml_prod(eu)", location="northeurope",
                storage_prefix="churnml", registry="contosoml", action_ref=f"contoso/ml-tools/modelfunc@{sha}")
    assert root.name == "churn-model"
    project = load_project(root)
    assert project.name == "churn-scorer-prod" and project.config.python_version == "3.12"
    assert (project.trigger.input_path, project.trigger.output_path) == ("scoring-in/{blobname}.json",
                                                                         "scoring-out/{blobname}.result.json")
    assert "  - python=3.12\n" in (root / "environment.yml").read_text()
    assert 'target-version = "py312"' in (root / "pyproject.toml").read_text()
    # modelfunc comes from PyPI whatever the action: the release the template came with.
    assert f"\nmodelfunc=={modelfunc.__version__}\n" in (root / "requirements-dev.txt").read_text()
    flow = workflow(root)
    assert flow["env"] == {"AZURE_FUNCTIONAPP_NAME": "churn-scorer-prod", "AZURE_RESOURCE_GROUP": "rg-ml_prod(eu)",
                           "AZURE_LOCATION": "northeurope", "AZURE_STORAGE_PREFIX": "churnml",
                           "AZURE_REGISTRY": "contosoml"}
    assert [s["uses"] for s in flow["jobs"]["deploy"]["steps"]][-1] == f"contoso/ml-tools/modelfunc@{sha}"
    readme = (root / "README.md").read_text()
    assert readme.startswith("# Churn Model\n") and "scoring-out/{blobname}.result.json" in readme
    assert "az group create --name 'rg-ml_prod(eu)' --location northeurope" in readme  # quoted for the shell
    proc = run([str(BIN / "zizmor"), "--offline", "."], cwd=root)
    assert proc.returncode == 0, proc.stdout  # the action's own path is what .github/zizmor.yml trusts

    http = bake(tmp_path / "http", trigger="http", http_auth_level="anonymous")
    assert load_project(http).trigger.auth_level == "anonymous"


# ---------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_generated_repo_runs_green_end_to_end(baked, tmp_path, trigger: str) -> None:
    """`modelfunc up`: package, Azurite (blob), the local host, and the sample round trip (HTTP: a request)."""
    root = baked[trigger, "redis"].root
    report = tmp_path / "report.json"
    result = run_modelfunc("up", str(root), "--out", str(tmp_path / "build"), "--report", str(report),
                           "--timeout", "60", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"PASS: {trigger} round trip")
    data = json.loads(report.read_text())
    assert data["passed"] is True
    expected = json.loads((root / "samples/expected.json").read_text())
    assert data["actual"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert ("==> start Azurite" in result.stderr) == (trigger == "blob")
    # The Redis choice reached the app: the setting is rendered (empty locally, so the runtime says it scores
    # uncached) and redis is in the app's requirements.
    settings = json.loads((tmp_path / "build/app/local.settings.json").read_text())
    assert settings["Values"]["RedisConnectionString"] == ""
    assert "cache: app setting RedisConnectionString is not set: predictions are not cached" in result.stderr
    assert "redis>=5" in (tmp_path / "build/app/requirements.txt").read_text().splitlines()


def test_the_template_model_is_what_its_train_py_makes_and_expected_json_is_what_score_py_returns(
        tmp_path, monkeypatch) -> None:
    """Straight from template/, without baking: the shipped model and sample output are reproducible."""
    import joblib
    import numpy as np

    out = tmp_path / "model.pkl"
    proc = run([sys.executable, str(PROJECT_TEMPLATE / "train.py"), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    shipped, retrained = joblib.load(PROJECT_TEMPLATE / "model/model.pkl"), joblib.load(out)
    np.testing.assert_allclose(retrained.coef_, shipped.coef_, rtol=1e-9)
    sample = json.loads((PROJECT_TEMPLATE / "samples/input.json").read_text())
    assert sample == {"data": [list(range(1, 11)), list(range(10, 0, -1))]}
    assert retrained.n_features_in_ == 10
    expected = json.loads((PROJECT_TEMPLATE / "samples/expected.json").read_text())
    assert retrained.predict(np.asarray(sample["data"], dtype=float)).tolist() == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(("values", "field", "fragments"), BAD_VALUES,
                         ids=[f"{case[1]}-{i}" for i, case in enumerate(BAD_VALUES)])
def test_bad_value_stops_generation_with_a_clear_message(tmp_path, values: dict, field: str,
                                                         fragments: list[str]) -> None:
    out = tmp_path / "out"
    proc = bake_cli(out, *(f"{k}={v}" for k, v in values.items()))
    assert proc.returncode != 0
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith(f"{field}: ")]
    assert len(lines) == 1, proc.stderr  # only the bad field is reported, not its consequences
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "nothing was generated" in proc.stderr
    assert list(out.iterdir()) == []  # cookiecutter removed the half-made project directory


@pytest.mark.parametrize(("field", "value", "choices"), [
    ("trigger", "queue", "['blob', 'http', 'service-bus-queue']"),
    ("python_version", "3.10", "['3.11', '3.12', '3.13']"),
    ("cache", "memcached", "['none', 'redis']"),
    ("http_auth_level", "public", "['function', 'anonymous', 'admin']"),
])
def test_a_value_outside_the_choices_stops_generation(tmp_path, field: str, value: str, choices: str) -> None:
    """cookiecutter itself refuses a choice it does not offer (naming the field and the choices) before any hook."""
    out = tmp_path / "out"
    proc = bake_cli(out, f"{field}={value}")
    assert proc.returncode != 0
    assert f"{value} provided for choice variable {field}, but the choices are {choices}" in proc.stderr
    assert list(out.iterdir()) == []


def test_the_hook_checks_the_choices_too(tmp_path) -> None:
    """A replay file skips cookiecutter's own choice check; the pre-generation hook still refuses the values."""
    out = tmp_path / "out"
    bake(tmp_path / "first")
    replay = json.loads((tmp_path / "replay" / "template.json").read_text())
    replay["cookiecutter"].update(trigger="queue", python_version="3.10", cache="memcached")
    bad = tmp_path / "bad-replay.json"
    bad.write_text(json.dumps(replay))
    proc = bake_cli(out, "--replay-file", str(bad), no_input=False)
    assert proc.returncode != 0
    assert "trigger: 'queue' is not one of blob, http, service-bus-queue; e.g. 'blob'" in proc.stderr
    assert ("python_version: '3.10' is not one of 3.11, 3.12, 3.13 (the shipped model needs scikit-learn 1.9.1, which "
            "needs Python 3.11 or newer); e.g. '3.11'") in proc.stderr
    assert "cache: 'memcached' is not one of none, redis; e.g. 'none'" in proc.stderr
    assert list(out.iterdir()) == []


def test_every_bad_value_is_reported_at_once(tmp_path) -> None:
    out = tmp_path / "out"
    proc = bake_cli(out, "app_name=my_app", "storage_prefix=ABC", "location=West Europe", "action_ref=x")
    assert proc.returncode != 0
    reported = [ln.strip().split(":")[0] for ln in proc.stderr.splitlines() if ln.startswith("  ")]
    assert {"app_name", "storage_prefix", "location", "action_ref"} <= set(reported)
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------------------------- injection

INJECTION = 'x"\'; import os; os.system("touch MARKER") #{{ }}\\'


@pytest.fixture
def marker() -> Iterator[Path]:
    """A file that would exist had a value run as code (a short path: the project name allows 80 characters)."""
    folder = Path(tempfile.mkdtemp(prefix="mf-", dir="/tmp"))
    yield folder / "pwned"
    shutil.rmtree(folder)


def injection(marker: Path) -> str:
    return INJECTION.replace("MARKER", str(marker))


def test_injection_on_the_command_line_runs_nothing_and_generates_nothing(tmp_path, marker) -> None:
    """cookiecutter renders command-line values as Jinja itself: `{{ }}` is a syntax error there, before any hook."""
    out = tmp_path / "out"
    proc = bake_cli(out, "project_name=" + injection(marker))
    assert proc.returncode != 0
    assert "TemplateSyntaxError" in proc.stderr
    assert not marker.exists()
    assert list(out.iterdir()) == []


def test_injection_typed_at_the_prompt_reaches_the_hook_as_data_and_is_refused(tmp_path, marker) -> None:
    """Typed answers are not rendered by cookiecutter: the hook gets the value verbatim, runs nothing, says why."""
    out = tmp_path / "out"
    value = injection(marker)
    prompts = [k for k in json.loads((TEMPLATE / "cookiecutter.json").read_text()) if not k.startswith("_")]
    proc = bake_cli(out, input=value + "\n" + "\n" * (len(prompts) - 1))
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert f"project_name: {value!r} contains a brace" in proc.stderr
    assert "e.g. 'Diabetes Scorer'" in proc.stderr
    assert not marker.exists()
    assert list(out.iterdir()) == []


def test_quotes_and_backslashes_in_the_project_name_stay_data(tmp_path, marker) -> None:
    """Without braces the same value is a fine project name: it lands verbatim in the README, nowhere as code,
    and the repo is as green as any other."""
    name = injection(marker).replace("{{ }}", "")
    root = bake(tmp_path / "out", project_name=name)
    assert not marker.exists()
    assert re.fullmatch(r"x-import-os-os-system-touch-[a-z0-9-]+", root.name) and len(root.name) <= 40, root.name
    assert (root / "README.md").read_text(encoding="utf-8").splitlines()[0] == f"# {name}"
    assert files_of(root) == FILES
    for rel in FILES - {"README.md", "model/model.pkl"}:
        assert str(marker) not in (root / rel).read_text(encoding="utf-8"), rel  # only the README has the name
    schema = run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                  str(root / ".github/workflows/deploy.yml")])
    assert schema.returncode == 0, schema.stdout
    assert run([str(BIN / "zizmor"), "--offline", "."], cwd=root).returncode == 0
    tests = run([sys.executable, "-m", "pytest", "-q", "tests/test_model.py"], cwd=root)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert not marker.exists()


def test_other_template_values_never_reach_yaml_or_code_unquoted(tmp_path, marker) -> None:
    """Even a value the hook would refuse is rendered as a quoted string: with hooks off (`--accept-hooks no`)
    a newline and a quote in a name still give valid YAML with that exact string, not a new key."""
    nasty = 'rg"\n  evil: "$(touch ' + str(marker) + ')'
    out = tmp_path / "out"
    with temp_dir(tmp_path):
        root = Path(cookiecutter(str(ROOT), directory="template", no_input=True, output_dir=str(out),
                                 extra_context={"resource_group": nasty, "app_name": nasty},
                                 config_file=str(cookiecutter_config(tmp_path)), accept_hooks=False))
    flow = workflow(root)
    assert flow["env"]["AZURE_RESOURCE_GROUP"] == nasty
    assert "evil" not in flow["env"]
    assert yaml.safe_load((root / "modelfunc.yaml").read_text())["name"] == nasty
    assert not marker.exists()
