"""modelfunc.config.load_project: modelfunc.yaml read into a project, its defaults, and errors at their line."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelfunc.config import HttpTrigger, load_project
from modelfunc.errors import ConfigError


def _config(repo: Path, text: str) -> Path:
    (repo / "modelfunc.yaml").write_text(text, encoding="utf-8")
    return repo


def test_trigger_shorthand_http_gives_the_defaults(example) -> None:  # noqa: ANN001
    repo = _config(example("diabetes-http"), "trigger: http\n")
    project = load_project(repo)
    assert project.trigger == HttpTrigger(type="http")
    assert (project.trigger.auth_level, project.trigger.route, project.trigger.methods) == (
        "function", "score", ("GET", "POST"))
    assert project.config.python_version == "3.11"
    assert project.config.samples.tolerance == 1e-6
    assert project.name == "diabetes-http"  # from the directory
    assert project.entry_script == (repo / "score.py").resolve()
    assert project.environment_file == (repo / "environment.yml").resolve()
    assert project.default_base_image == "mcr.microsoft.com/azure-functions/python:4-python3.11"


def test_trigger_shorthand_blob_gives_the_defaults(example) -> None:  # noqa: ANN001
    project = load_project(_config(example("diabetes-blob"), "trigger: blob\n"))
    t = project.trigger
    assert (t.input_path, t.output_path, t.error_path, t.connection, t.source) == (
        "input/{blobname}.json", "output/{blobname}_out.json", "errors/{blobname}_error.json",
        "TriggerConnectionString", "polling")


# (as written in modelfunc.yaml, the version meant): the test ids say whether it was quoted.
@pytest.mark.parametrize(("written", "version"),
                         [("3.11", "3.11"), ("3.12", "3.12"), ("'3.10'", "3.10"), ("3.10", "3.10")],
                         ids=["3.11-unquoted", "3.12-unquoted", "3.10-quoted", "3.10-unquoted"])
def test_python_version_quoted_or_not(example, written: str, version: str) -> None:  # noqa: ANN001
    # YAML reads an unquoted 3.10 as the float 3.1; the user still meant Python 3.10.
    project = load_project(_config(example("diabetes-http"), f"python_version: {written}\ntrigger: http\n"))
    assert project.config.python_version == version


DEEP = """\
# A model repo config with comments and blank lines before the mistake.
name: deep-scorer

trigger:
  type: http
  # which verbs the function answers
  methods:
    - GET
    - POST
    - FETCH
  route: score

samples:
  input: samples/input.json
  tolerance: -1
"""


def test_line_numbers_for_deep_fields(example) -> None:  # noqa: ANN001
    repo = _config(example("diabetes-http"), DEEP)
    with pytest.raises(ConfigError) as e:
        load_project(repo)
    err = e.value
    assert (err.field, err.line) == ("trigger.methods.2", 10)
    assert err.file == str(repo / "modelfunc.yaml")
    assert err.message.startswith("'FETCH' is not allowed; use one of: GET, POST, PUT, PATCH, DELETE or OPTIONS")
    assert "\n  modelfunc.yaml:15: samples.tolerance: input should be greater than or equal to 0" in err.message
    assert str(err).startswith(f"{repo / 'modelfunc.yaml'}:10: trigger.methods.2: 'FETCH'")


def test_line_numbers_for_blob_fields_and_flow_mappings(example) -> None:  # noqa: ANN001
    text = ("name: blob-scorer\n\ntrigger:\n  type: blob\n  input_path: input/{blobname}.json\n\n\n"
            "  connection: 9lives\nsamples: {tolerance: 0.1, expected: samples/nope.json}\n")
    repo = _config(example("diabetes-blob"), text)
    with pytest.raises(ConfigError) as e:
        load_project(repo)
    assert (e.value.field, e.value.line) == ("trigger.connection", 8)

    _config(repo, "trigger: {type: http,\n  auth_level: nobody}\n")
    with pytest.raises(ConfigError) as e:
        load_project(repo)
    assert (e.value.field, e.value.line) == ("trigger.auth_level", 2)

    _config(repo, "trigger: blob\nsamples: {tolerance: 0.1,\n  expected: samples/nope.json}\n")
    with pytest.raises(ConfigError) as e:
        load_project(repo)
    assert (e.value.field, e.value.line) == ("samples.expected", 3)
    assert e.value.message == "'samples/nope.json' does not exist"


def test_unknown_field_lists_what_is_allowed_in_that_section(example) -> None:  # noqa: ANN001
    repo = _config(example("diabetes-http"), "trigger: http\nsamples:\n  input: samples/input.json\n  tolernce: 1\n")
    with pytest.raises(ConfigError) as e:
        load_project(repo)
    assert (e.value.field, e.value.line) == ("samples.tolernce", 4)
    assert e.value.message == ("unknown field 'tolernce' (did you mean 'tolerance'?); "
                               "allowed here: expected, input, tolerance")


def test_a_project_name_with_a_trailing_newline_is_refused(example) -> None:  # noqa: ANN001
    """name: must be the whole of a valid app name ('ab\\n' passed a `^...$` rule read with re.match)."""
    assert load_project(_config(example("diabetes-http"), 'name: "ab"\ntrigger: http\n')).name == "ab"
    with pytest.raises(ConfigError) as e:
        load_project(_config(example("diabetes-http"), 'name: "ab\\n"\ntrigger: http\n'))
    assert "name" in str(e.value)
