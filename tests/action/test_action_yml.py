"""action.yml and the workflows: GitHub's schemas, zizmor, pinned actions and least privilege, expressions kept out of
``run:``, and every input, output and hand-over declared, documented and mapped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from support.core import ROOT

VENV_BIN = Path(sys.executable).parent
ACTION = ROOT / "action.yml"


# ----------------------------------------------------------------------------------------- action.yml


def _action() -> dict:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _run_tool(*args: str) -> str:
    result = subprocess.run([str(VENV_BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NO_COLOR": "1"})
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # colours, should a CI environment force them
    assert result.returncode == 0, out + result.stderr
    return out


def test_action_and_workflows_validate_against_githubs_schemas() -> None:
    assert [w.name for w in WORKFLOWS] == ["ci.yml", "release.yml", "self-test.yml"]
    assert "ok -- validation done" in _run_tool("check-jsonschema", "--builtin-schema", "vendor.github-actions",
                                                 str(ACTION))
    assert "ok -- validation done" in _run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows",
                                                 *map(str, WORKFLOWS))


def test_action_and_workflows_have_no_zizmor_findings() -> None:
    out = _run_tool("zizmor", "--offline", "--no-progress", str(ACTION), str(ROOT / ".github" / "workflows"))
    assert "No findings to report" in out
    # One finding is ignored, in the open: `uses: ./` in the self-test (zizmor prefers the newer `$/`).
    assert "(1 ignored" in out
    assert ACTION.read_text().count("zizmor: ignore") == 0
    assert sum(w.read_text().count("zizmor: ignore") for w in WORKFLOWS) == 1
    assert "uses: ./ # zizmor: ignore[self-repository]" in (ROOT / ".github/workflows/self-test.yml").read_text()


def test_workflows_pin_actions_and_keep_least_privilege() -> None:
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        on = workflow[True]  # YAML 1.1 reads the key `on` as true
        # release.yml: a tag's workflow, each job with what it needs (tests/action/test_release.py)
        release = path.name == "release.yml"
        assert release or ("push" in on and "pull_request" in on), path.name
        assert workflow["permissions"] == ({} if release else {"contents": "read"}), path.name
        for name, job in workflow["jobs"].items():
            assert release or "permissions" not in job or set(job["permissions"].values()) <= {"read", "none"}, name
            assert job["timeout-minutes"] <= 90, name
            for step in job["steps"]:
                uses = step.get("uses")
                if uses and uses != "./":
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
                if uses and uses.startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
                assert "${{" not in step.get("run", ""), (path.name, step.get("name"))


def test_the_self_test_scaffolds_from_the_template_and_runs_this_action() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/self-test.yml").read_text(encoding="utf-8"))
    dispatch = workflow[True]["workflow_dispatch"]
    assert dispatch["inputs"]["trigger"]["options"] == ["blob", "http", "service-bus-queue"]
    [job] = workflow["jobs"].values()
    steps = {s.get("name", s.get("uses")): s for s in job["steps"]}
    scaffold = steps["Scaffold a model repo from template/"]
    assert "cookiecutter" in scaffold["run"] and " template" in scaffold["run"]
    action_step = steps["Run the action on it (target local)"]
    assert action_step["uses"] == "./" and action_step["with"]["target"] == "local"
    assert action_step["with"]["model-repo"] == "scaffold/self-test"
    check = steps["Check the action's outputs"]
    assert check["env"]["TEST_RESULT"] == "${{ steps.modelfunc.outputs.test-result }}"
    assert 'test "$TEST_RESULT" = pass' in check["run"]
    pinned = (ROOT / ".github/self-test-requirements.txt").read_text()
    assert re.search(r"^cookiecutter==[\d.]+$", pinned, flags=re.M)


def test_no_expression_inside_run_and_inputs_reach_scripts_through_env() -> None:
    action = _action()
    declared = set(action["inputs"])
    steps = action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"
    consumed = set()
    for s in steps:
        if "run" in s:
            assert "${{" not in s["run"], s["name"]
            assert s["shell"] == "bash"
        for key, value in (s.get("env") or {}).items():
            m = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", str(value))
            if key.startswith("INPUT_") and m:
                assert key == "INPUT_" + m.group(1).upper().replace("-", "_"), key
                assert m.group(1) in declared
                consumed.add(m.group(1))
            elif key.startswith("INPUT_"):  # from another step's output, or the commit
                assert re.fullmatch(r"\$\{\{ (steps\.[a-z-]+\.outputs\.[a-z-]+|github\.sha) \}\}", value), value
    # Every input is used: by a script, or (python-version) by setup-python; the rest only in `if:`.
    conditions = " ".join(str(s.get("if", "")) for s in steps)
    used_in_if = {name for name in declared if f"inputs.{name}" in conditions}
    # A deprecated input (deprecationMessage: GitHub warns whoever still passes it) is declared so that old
    # workflows keep working, and reaches nothing.
    deprecated = {name for name, spec in action["inputs"].items() if spec.get("deprecationMessage")}
    assert deprecated == {"install-requirements"}
    assert not deprecated & consumed
    assert declared - consumed - used_in_if - deprecated == {"python-version"}
    assert {"target", "swap"} <= used_in_if


def test_action_inputs_and_outputs_are_documented_and_mapped() -> None:
    action = _action()
    assert action["branding"]["icon"] and action["branding"]["color"]
    for name, spec in action["inputs"].items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", name), name
        assert spec["description"] and "default" in spec, name
    for name in ("model-repo", "config", "target", "app-name", "resource-group", "location", "storage-prefix",
                 "registry", "slot-name", "hosting-plan", "subscription-id", "tenant-id", "client-id",
                 "run-blob-test", "blob-test-timeout", "python-version"):
        assert name in action["inputs"]
    assert action["inputs"]["target"]["default"] == "local"
    assert set(action["outputs"]) == {"image", "app-url", "slot-url", "test-result", "report-path", "golden"}
    for spec in action["outputs"].values():
        assert spec["description"] and spec["value"].startswith("${{ ")
    steps = [s.get("id") for s in action["runs"]["steps"]]
    assert steps == ["python", "pip-key", "pip-cache", "install", "azurite", "up", "package", "deploy", "test",
                     "swap"]


def test_setup_python_is_pinned_by_commit_and_leaves_the_environment_alone() -> None:
    setup = next(s for s in _action()["runs"]["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert re.fullmatch(r"actions/setup-python@[0-9a-f]{40}", setup["uses"])
    assert setup["with"]["update-environment"] is False
    for s in _action()["runs"]["steps"]:
        if "uses" in s:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", s["uses"]), s["uses"]


def test_the_template_workflow_only_passes_inputs_the_action_declares() -> None:
    workflow = next((ROOT / "template").glob("*/.github/workflows/deploy.yml")).read_text(encoding="utf-8")
    block = workflow.rsplit("with:{% raw %}", 1)[1].split("{% endraw %}", 1)[0]  # the modelfunc step
    passed = set(re.findall(r"^\s+([a-z-]+):", block, flags=re.M))
    assert "model-repo" in passed and "run-blob-test" in passed
    assert passed <= set(_action()["inputs"]), passed - set(_action()["inputs"])


def test_the_steps_read_only_inputs_the_action_declares_or_hands_over() -> None:
    """Every get_input/get_bool/get_float/get_optional in the action wing names an input of action.yml, or a value
    one step hands to the next (the step outputs image, deployment, golden)."""
    source = (ROOT / "generator/modelfunc/action/steps.py").read_text(encoding="utf-8")
    read = set(re.findall(r"io\.get_(?:input|bool|float|optional)\(\"([a-z-]+)\"", source))
    handed_over = {"image", "deployment", "golden"}
    assert read - handed_over <= set(_action()["inputs"]), read - handed_over - set(_action()["inputs"])
    assert {"registry-username", "registry-password", "pull"} <= read  # the package step's, declared and passed
    for script in (ROOT / "scripts").glob("*.py"):
        assert "INPUT_" not in script.read_text(encoding="utf-8").split('"""', 2)[2], script.name  # thin
