"""`modelfunc new`: the template (template/) through click prompts and cookiecutter's API.

Answers arrive as a user's here-doc would (stdin of a child process, no terminal): only the questions that apply
to the chosen trigger are asked, a bad answer is refused with one line and asked again, and the project made is one
`modelfunc package --no-build` takes. Options answer questions instead; a bad one is one line and exit code 2, with
nothing written. The rules are the template's own (its pre-generation hook), so `cookiecutter <repo> --directory
template` and `modelfunc new` refuse the same values with the same words.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from modelfunc import newproject
from modelfunc.config import load_project
from support.core import ROOT, run_modelfunc
from support.template import CONTEXT, PROMPTS, TEMPLATE

pytest.importorskip("cookiecutter", reason="pip install -e '.[test]' installs cookiecutter")

QUIET_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}
TRIGGER_QUESTION = "What starts a scoring? (blob, http, service-bus-queue) [blob]: "
BLOB_QUESTIONS = (PROMPTS["blob_input_path"], PROMPTS["blob_output_path"])
HTTP_QUESTIONS = (PROMPTS["http_auth_level"]["__prompt__"],)
QUEUE_QUESTIONS = (PROMPTS["service_bus_input_queue"], PROMPTS["service_bus_output_queue"])


def modelfunc_new(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`modelfunc new` in a child process, as a user runs it; ``input`` is the here-doc of answers."""
    return subprocess.run([sys.executable, "-m", "modelfunc", "new", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                          env={**os.environ, **QUIET_ENV})


def heredoc(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("Error: ")]


def prompt_texts() -> list[str]:
    return [p if isinstance(p, str) else p["__prompt__"] for p in PROMPTS.values()]


def asked(proc: subprocess.CompletedProcess[str], question: str) -> int:
    return proc.stdout.count(question)


# ---------------------------------------------------------------------------------- a here-doc per trigger

TRIGGER_ANSWERS = {
    # trigger: (its answers, in the order asked; what modelfunc.yaml must then say about the trigger)
    "blob": (["in-box/{blobname}.json", "out-box/{blobname}_scored.json"],
             {"input_path": "in-box/{blobname}.json", "output_path": "out-box/{blobname}_scored.json"}),
    "http": (["anonymous"], {"auth_level": "anonymous"}),
    "service-bus-queue": (["requests-q", "answers-q"], {"input_queue": "requests-q", "output_queue": "answers-q"}),
}


@pytest.mark.parametrize("trigger", list(TRIGGER_ANSWERS))
def test_heredoc_answers_make_a_project_that_packages(tmp_path, trigger: str) -> None:
    own, expected = TRIGGER_ANSWERS[trigger]
    answers = heredoc(f"Fraud {trigger} Scorer", trigger, *own,
                      "3.12",            # python_version
                      "redis",           # cache
                      "",                # app_name: the default made from the project name
                      "rg-fraud",        # resource_group
                      "northeurope",     # location
                      "", "", "")        # storage_prefix, registry, action_ref: the defaults
    proc = modelfunc_new("out", cwd=tmp_path, input=answers)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    slug = f"fraud-{trigger}-scorer"
    root = tmp_path / "out" / slug
    assert proc.stdout.splitlines()[-1] == str(root)
    assert error_lines(proc) == []
    assert "stdin ended" not in proc.stderr  # every question had its answer
    # Only the questions of this trigger were asked.
    for kind, questions in (("blob", BLOB_QUESTIONS), ("http", HTTP_QUESTIONS), ("service-bus-queue", QUEUE_QUESTIONS)):
        for question in questions:
            assert asked(proc, question) == (kind == trigger), (question, proc.stdout)
    # Each answer is shown on its prompt's line, as a terminal would show it.
    assert f"{TRIGGER_QUESTION}{trigger}\n" in proc.stdout

    config = yaml.safe_load((root / "modelfunc.yaml").read_text(encoding="utf-8"))
    assert config["name"] == slug
    assert config["python_version"] == "3.12"
    assert {k: config["trigger"][k] for k in expected} == expected
    assert config["trigger"]["type"] == trigger
    assert config["cache"]["redis"]["connection"] == "RedisConnectionString"
    flow = yaml.safe_load((root / ".github/workflows/deploy.yml").read_text(encoding="utf-8"))
    assert flow["env"]["AZURE_RESOURCE_GROUP"] == "rg-fraud"
    assert flow["env"]["AZURE_LOCATION"] == "northeurope"
    assert flow["env"]["AZURE_FUNCTIONAPP_NAME"] == slug
    project = load_project(root)
    assert project.trigger.type == trigger

    packaged = run_modelfunc("package", str(root), "--no-build", "--out", str(tmp_path / "build"))
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    assert (tmp_path / "build/app/function_app.py").is_file()


# ---------------------------------------------------------------------------------- bad answers, asked again


def test_an_invalid_trigger_is_refused_with_one_line_and_asked_again(tmp_path) -> None:
    proc = modelfunc_new("out", cwd=tmp_path, input=heredoc("Scorer", "blobb", "http"))
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert error_lines(proc) == ["Error: 'blobb' is not one of blob, http, service-bus-queue; e.g. 'blob'"]
    assert proc.stdout.count(TRIGGER_QUESTION) == 2
    assert f"{TRIGGER_QUESTION}blobb\nError: " in proc.stdout  # the line right after the bad answer
    assert yaml.safe_load((tmp_path / "out/scorer/modelfunc.yaml").read_text())["trigger"]["type"] == "http"


def test_an_invalid_project_name_is_refused_with_one_line_and_asked_again(tmp_path) -> None:
    proc = modelfunc_new("out", cwd=tmp_path, input=heredoc("Scorer {x}", "!!!", "Good Scorer", "http"))
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert error_lines(proc) == [
        "Error: 'Scorer {x}' contains a brace, which reads as template and GitHub Actions expression syntax; "
        "leave braces out, e.g. 'Diabetes Scorer'",
        "Error: '!!!' has no letters or digits to name the project folder after (it became '-'); "
        "e.g. 'Diabetes Scorer'",
    ]
    assert proc.stdout.count(PROMPTS["project_name"]) == 3
    assert (tmp_path / "out/good-scorer/modelfunc.yaml").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good-scorer"]


def test_an_invalid_blob_path_is_refused_with_one_line_and_asked_again(tmp_path) -> None:
    proc = modelfunc_new("out", cwd=tmp_path, input=heredoc(
        "Scorer", "blob", "input/{name}.json", "In_Put/{blobname}.json", "input/{blobname}.json",
        "input/{blobname}_out.json", "output/{blobname}_out.json"))
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert error_lines(proc) == [
        "Error: 'input/{name}.json' must contain {blobname}, e.g. 'input/{blobname}.json'",
        "Error: 'In_Put' is not a valid container name: 3-63 lowercase letters, digits and single hyphens, "
        "starting and ending with a letter or digit; e.g. 'input/{blobname}.json'",
        "Error: 'input/{blobname}_out.json' is in the input container 'input', so every output would trigger the "
        "function again; use another container, e.g. 'output/{blobname}_out.json'",
    ]
    trigger = load_project(tmp_path / "out/scorer").trigger
    assert (trigger.input_path, trigger.output_path) == ("input/{blobname}.json", "output/{blobname}_out.json")


def test_an_empty_answer_takes_the_default_and_a_folder_that_exists_is_refused(tmp_path) -> None:
    (tmp_path / "out/diabetes-scorer").mkdir(parents=True)
    proc = modelfunc_new("out", cwd=tmp_path, input=heredoc("", "Other Scorer", "", "", ""))
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert error_lines(proc) == ["Error: 'Diabetes Scorer' makes the project folder out/diabetes-scorer, which "
                                 "exists already; give another name (or another DIR)"]
    assert list((tmp_path / "out/diabetes-scorer").iterdir()) == []  # left alone
    assert load_project(tmp_path / "out/other-scorer").trigger.type == "blob"  # the default trigger


def test_template_syntax_typed_at_a_prompt_is_data_and_refused(tmp_path) -> None:
    """cookiecutter renders the values it is given as Jinja: a typed `{{ ... }}` must never reach it."""
    marker = tmp_path / "pwned"
    name = "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
    proc = modelfunc_new("out", cwd=tmp_path, input=heredoc(name, "Scorer"))
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert error_lines(proc)[0].startswith(f"Error: {name!r} contains a brace")
    assert not marker.exists()


# ---------------------------------------------------------------------------------- options, no prompts


ALL_OPTIONS = ["--name", "Options Scorer", "--trigger", "service-bus-queue", "--input-queue", "in-q",
               "--output-queue", "out-q", "--python-version", "3.13", "--cache", "none", "--app-name", "opt-app",
               "--resource-group", "rg-opt", "--location", "uksouth", "--storage-prefix", "optstore",
               "--registry", "optregistry", "--action-ref", "me/modelfunc@v2"]


@pytest.mark.parametrize("no_input", [True, False], ids=["--no-input", "stdin-closed"])
def test_options_alone_make_the_project_without_a_question(tmp_path, no_input: bool) -> None:
    proc = modelfunc_new("out", *ALL_OPTIONS, *(["--no-input"] if no_input else []), cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [text for text in prompt_texts() if text in proc.stdout]  # nothing was asked
    assert "stdin ended" not in proc.stderr
    root = tmp_path / "out/options-scorer"
    config = yaml.safe_load((root / "modelfunc.yaml").read_text())
    assert config["name"] == "opt-app" and config["python_version"] == "3.13" and "cache" not in config
    assert (config["trigger"]["input_queue"], config["trigger"]["output_queue"]) == ("in-q", "out-q")
    flow = yaml.safe_load((root / ".github/workflows/deploy.yml").read_text())
    assert (flow["env"]["AZURE_RESOURCE_GROUP"], flow["env"]["AZURE_LOCATION"]) == ("rg-opt", "uksouth")
    (job,) = flow["jobs"].values()
    assert "me/modelfunc@v2" in [step["uses"] for step in job["steps"]]


def test_without_a_terminal_a_missing_answer_takes_the_template_default(tmp_path) -> None:
    """stdin ends (here: /dev/null) before the questions do: the rest are the template's defaults, as
    `cookiecutter --no-input` makes them; the defaults made from the project name follow the name given."""
    proc = modelfunc_new("out", "--name", "Quiet Scorer", "--trigger", "http", cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.count("note: stdin ended: the questions left take the template's defaults") == 1
    config = yaml.safe_load((tmp_path / "out/quiet-scorer/modelfunc.yaml").read_text())
    assert (config["name"], config["python_version"]) == ("quiet-scorer", "3.11")
    assert config["trigger"]["auth_level"] == "function"


@pytest.mark.parametrize(("args", "line"), [
    (["--trigger", "blobb"], "error: --trigger: 'blobb' is not one of blob, http, service-bus-queue; e.g. 'blob'"),
    (["--name", "!!!"], "error: --name: '!!!' has no letters or digits to name the project folder after (it became "
                        "'-'); e.g. 'Diabetes Scorer'"),
    (["--input-path", "input/{name}.json"],
     "error: --input-path: 'input/{name}.json' must contain {blobname}, e.g. 'input/{blobname}.json'"),
    (["--trigger", "http", "--input-path", "in/{blobname}"],
     "error: --input-path: is for the blob trigger; this project's trigger is http"),
    (["--python-version", "3.10"], "error: --python-version: '3.10' is not one of 3.11, 3.12, 3.13 (the shipped "
                                   "model needs scikit-learn 1.9.1, which needs Python 3.11 or newer); e.g. '3.11'"),
    (["--trigger", "service-bus-queue", "--input-queue", "q", "--output-queue", "Q"],
     "error: --output-queue: 'Q' is also the input queue, so every answer would be scored again; use another queue, "
     "e.g. 'scoring-results'"),
    (["--name", "A"], "error: --app-name: the default 'a' is not a valid Function App name: 2-60 letters, digits "
                      "and hyphens, not starting or ending with a hyphen; e.g. 'diabetes-scorer'"),
])
def test_a_bad_option_is_one_line_and_exit_code_2_with_nothing_written(tmp_path, args: list[str],
                                                                       line: str) -> None:
    proc = modelfunc_new("out", *args, "--no-input", cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == line + "\n"
    assert not (tmp_path / "out").exists()


def test_a_dir_that_is_a_file_is_refused_before_any_question(tmp_path) -> None:
    (tmp_path / "taken").write_text("")
    proc = modelfunc_new("taken/sub", cwd=tmp_path, input=heredoc("Scorer"))
    no_traceback(proc)
    assert proc.returncode == 2
    assert proc.stderr == "error: DIR: 'taken/sub' cannot be made: taken is a file, not a folder\n"
    assert proc.stdout == ""


# ---------------------------------------------------------------------------------- one home for each rule


def test_every_template_variable_has_an_option_named_after_it() -> None:
    from modelfunc.cli import new

    variables = [k for k in CONTEXT if not k.startswith("_")]
    params = {p.name for p in new.params}
    assert set(variables) <= params
    assert newproject.Template(TEMPLATE).variables == variables
    for name, fields in newproject.TRIGGER_FIELDS.items():
        assert name in CONTEXT["trigger"] and set(fields) <= set(variables)
    help_text = "".join(run_modelfunc("new", "--help").stdout.split())  # unwrapped: "service-bus-\nqueue"
    for name in variables:  # the choices the options' help lists are the template's
        if isinstance(CONTEXT[name], list):
            assert all(choice in help_text for choice in CONTEXT[name]), name


def test_the_hook_is_importable_unrendered_and_has_one_jinja_expression() -> None:
    source = (TEMPLATE / "hooks/pre_gen_project.py").read_text(encoding="utf-8")
    assert re.findall(r"\{\{|\{%|\{#", source) == ["{{"]
    template = newproject.Template(TEMPLATE)
    assert template.errors("trigger", "queue", {}) == ["'queue' is not one of blob, http, service-bus-queue; "
                                                       "e.g. 'blob'"]
    assert template.errors("project_name", "Fine Name", {}) == []
    # Defaults are rendered as cookiecutter renders them, from the answers before them; answers are never rendered.
    context = template.context({"project_name": "Tax Scorer {{ 7 * 7 }}"})
    assert (context["project_name"], context["__project_slug"]) == ("Tax Scorer {{ 7 * 7 }}", "tax-scorer-7-7")
    assert (context["registry"], context["resource_group"]) == ("taxscorer77acr", "rg-tax-scorer-7-7")


def test_the_hooks_copies_for_cookiecutter_alone_are_modelfuncs_rules() -> None:
    """With modelfunc installed the hook takes the trigger list and the app-name rule from it; without (cookiecutter
    alone) it uses its own copies: loaded in a Python where modelfunc cannot be imported, they are the same."""
    from modelfunc.config import APP_NAME_RE, APP_NAME_RULE
    from modelfunc.triggers import TRIGGER_TYPES

    probe = (
        "import importlib.util, json, sys\n"
        "sys.modules['modelfunc'] = None  # import modelfunc fails, as where cookiecutter runs alone\n"
        f"spec = importlib.util.spec_from_file_location('hook', {str(TEMPLATE / 'hooks/pre_gen_project.py')!r})\n"
        "hook = importlib.util.module_from_spec(spec); spec.loader.exec_module(hook)\n"
        "print(json.dumps([list(hook.TRIGGERS), hook.APP_NAME.pattern, hook.APP_NAME_RULE]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    triggers, pattern, rule = json.loads(proc.stdout)
    assert triggers == sorted(TRIGGER_TYPES) == CONTEXT["trigger"]
    assert rule == APP_NAME_RULE
    for name in ("ab", "a", "-ab", "ab-", "a" * 60, "a" * 61, "my-app-1", "my_app", "A1"):
        assert bool(re.fullmatch(pattern, name)) == bool(APP_NAME_RE.fullmatch(name)), name


def test_cookiecutter_still_works_and_refuses_a_bad_queue_name_with_the_same_words(tmp_path) -> None:
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(yaml.safe_dump({"cookiecutters_dir": str(tmp_path / "cc"), "replay_dir": str(tmp_path / "r")}))
    cmd = [sys.executable, "-m", "cookiecutter", str(ROOT), "--directory", "template", "--no-input",
           "--config-file", str(config)]
    env = {**os.environ, **QUIET_ENV, "TMPDIR": str(tmp_path)}
    good = subprocess.run([*cmd, "--output-dir", str(tmp_path / "good"), "trigger=service-bus-queue",
                           "service_bus_input_queue=jobs", "service_bus_output_queue=results"],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert good.returncode == 0, good.stderr
    trigger = load_project(tmp_path / "good/diabetes-scorer").trigger
    assert (trigger.input_queue, trigger.output_queue) == ("jobs", "results")
    assert "a message on `jobs` would, and reads the message meant for\n`results`" in (
        tmp_path / "good/diabetes-scorer/README.md").read_text()
    bad = subprocess.run([*cmd, "--output-dir", str(tmp_path / "bad"), "service_bus_input_queue=my queue"],
                         capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0
    message = newproject.Template(TEMPLATE).errors("service_bus_input_queue", "my queue", {})[0]
    assert f"  service_bus_input_queue: {message}\n" in bad.stderr
    assert list((tmp_path / "bad").iterdir()) == []


# ---------------------------------------------------------------------------------- nothing half-written


def broken_template(tmp_path: Path, how: str) -> Path:
    copy = tmp_path / "template"
    shutil.copytree(TEMPLATE, copy)
    if how == "hook":  # the hook refuses at generation, after the answers passed its validate()
        hook = copy / "hooks/pre_gen_project.py"
        hook.write_text(hook.read_text().replace("sys.exit(main(", "sys.exit(1 or main("))
    else:  # a file that does not render
        (copy / "{{cookiecutter.__project_slug}}" / "zz-broken.txt").write_text("{{ cookiecutter.nope }}\n")
    return copy


@pytest.mark.parametrize("how", ["hook", "render"])
def test_a_failed_generation_leaves_nothing_behind(tmp_path, how: str) -> None:
    template = broken_template(tmp_path, how)
    out = tmp_path / "new" / "out"
    with pytest.raises(newproject.GenerationError) as err:
        newproject.new(out, {"project_name": "Broken Scorer"}, options={}, ask=False, template_root=template)
    assert err.value.exit_code == 1
    assert "nothing was generated" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "new").exists()  # the folders it made for DIR went too
    assert not any(tmp_path.glob("**/broken-scorer"))
