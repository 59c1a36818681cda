"""Unit tests of the pure pieces: blob paths, requirement translation, output comparison, config loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelfunc.blobpath import BlobPath, BlobPathError
from modelfunc.compare import compare
from modelfunc.config import HttpTrigger, load_project
from modelfunc.environment import read_requirements
from modelfunc.errors import ConfigError, EnvironmentSpecError

# ================================================================== BlobPath


def test_parse_splits_container_pattern_and_placeholders() -> None:
    p = BlobPath.parse("input/{date}/{blobname}.json")
    assert (p.container, p.blob_pattern, p.placeholders) == ("input", "{date}/{blobname}.json", ("date", "blobname"))
    assert p.pattern == "input/{date}/{blobname}.json"


@pytest.mark.parametrize(
    "pattern, message",
    [
        pytest.param("{blobname}.json", "has no container: write it as 'container/blob-pattern'", id="no-container"),
        pytest.param("Input/{blobname}.json", "container name 'Input' is invalid", id="uppercase-container"),
        pytest.param("in/{blobname}", "container name 'in' is invalid", id="container-too-short"),
        pytest.param("my--data/{blobname}", "container name 'my--data' is invalid", id="double-hyphen"),
        pytest.param("-input/{blobname}", "container name '-input' is invalid", id="leading-hyphen"),
        pytest.param("{c}/{blobname}", "the container part '{c}' cannot contain a {placeholder}",
                     id="placeholder-in-container"),
        pytest.param("input/", "names a container but no blob pattern after the '/'", id="no-blob-pattern"),
        pytest.param("input/{blobname.json", "has an unbalanced or invalid {placeholder}", id="unbalanced"),
        pytest.param("input/{1x}.json", "has an unbalanced or invalid {placeholder}", id="bad-placeholder-name"),
        pytest.param("input/{a}-{a}.json", "uses the same placeholder twice", id="duplicate-placeholder"),
    ],
)
def test_parse_rejects(pattern: str, message: str) -> None:
    with pytest.raises(BlobPathError) as e:
        BlobPath.parse(pattern)
    assert message in str(e.value)


def test_parse_accepts_63_char_container_and_rejects_64() -> None:
    assert BlobPath.parse("a" * 63 + "/{blobname}").container == "a" * 63
    with pytest.raises(BlobPathError):
        BlobPath.parse("a" * 64 + "/{blobname}")


@pytest.mark.parametrize(
    "blob, expected",
    [
        ("report.json", {"blobname": "report"}),
        ("a.b/c.json", {"blobname": "a.b/c"}),  # dots and slashes belong to the placeholder
        ("x.json.json", {"blobname": "x.json"}),
        ("report.txt", None),
        ("reportjson", None),  # the '.' is literal, not a regex wildcard
        (".json", None),  # a placeholder matches at least one character
        ("report.json.bak", None),  # anchored at the end
    ],
)
def test_match_single_placeholder(blob: str, expected: dict | None) -> None:
    assert BlobPath.parse("input/{blobname}.json").match(blob) == expected


def test_match_literal_regex_characters_and_two_placeholders() -> None:
    p = BlobPath.parse("input/raw+(v1)/{date}_{blobname}.json")
    assert p.match("raw+(v1)/2024-01-31_a.b.json") == {"date": "2024-01-31", "blobname": "a.b"}
    assert p.match("rawww(v1)/2024_a.json") is None
    assert p.match("raw(v1)/2024_a.json") is None


def test_format_fills_placeholders_and_round_trips_match() -> None:
    src = BlobPath.parse("input/{blobname}.json")
    out = BlobPath.parse("output/{blobname}_out.json")
    values = src.match("a.b/c.json")
    assert out.format(values) == "a.b/c_out.json"
    assert src.format(values) == "a.b/c.json"
    assert out.format({"blobname": "x", "unused": "y"}) == "x_out.json"


def test_format_names_the_missing_value() -> None:
    with pytest.raises(BlobPathError) as e:
        BlobPath.parse("output/{date}/{blobname}.json").format({"blobname": "x"})
    assert "needs values for date" in str(e.value)


@pytest.mark.parametrize(
    "pattern, prefix",
    [
        ("input/{blobname}.json", ""),
        ("input/raw/{blobname}.json", "raw/"),
        ("input/raw/v1-{date}/{blobname}", "raw/v1-"),
        ("input/fixed.json", "fixed.json"),
    ],
)
def test_prefix_is_the_literal_start(pattern: str, prefix: str) -> None:
    p = BlobPath.parse(pattern)
    assert p.prefix == prefix
    if p.placeholders:
        example = p.format({n: "x" for n in p.placeholders})
        assert example.startswith(p.prefix) and p.match(example) is not None


# ================================================================== environment.read_requirements


def _env(tmp_path: Path, text: str, name: str = "environment.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


CONDA = """\
name: scorer
channels:
  - conda-forge
dependencies:
  - python=3.11
  - numpy=1.26
  - pandas=2.1.4
  - conda-forge::scipy
  - conda-forge::scikit-learn>=1.3
  - pytorch
  - mkl
  - pip
  - pip:
      - zeta-lib==2.0
      - alpha-lib>=1
      - requests  # trailing comment
"""


def test_conda_specs_translate_to_pip(tmp_path: Path) -> None:
    req = read_requirements(_env(tmp_path, CONDA), python_version="3.11")
    assert req.lines == [
        "azure-functions",
        "numpy==1.26.*",  # numpy=1.26 → any 1.26.x
        "pandas==2.1.4",  # a full version stays exact
        "scipy",  # channel prefix dropped
        "scikit-learn>=1.3",
        "torch",  # conda name → pip name
        "zeta-lib==2.0",  # pip: section kept, in the user's order
        "alpha-lib>=1",
        "requests",
    ]
    assert req.skipped == ["mkl"]  # reported to the user; pip itself is not worth a word
    assert "mkl" not in req.render()
    assert req.render().startswith("# Generated by modelfunc from environment.yml")
    assert req.render().endswith("alpha-lib>=1\nrequests\n")


def test_conda_spec_with_build_string_and_wildcard(tmp_path: Path) -> None:
    env = _env(tmp_path, "dependencies:\n  - numpy=1.26=py311h64a7726_0\n  - scipy=1.11.*\n  - xz\n")
    assert read_requirements(env, python_version="3.11").lines == ["azure-functions", "numpy==1.26.*", "scipy==1.11.*"]


def test_conda_space_separated_version_keeps_the_pin(tmp_path: Path) -> None:
    # conda match specs also take "name version" ("numpy 1.17.3 py38*" in the conda docs).
    env = _env(tmp_path, "dependencies:\n  - numpy 1.26.4\n  - scipy 1.11.*\n")
    lines = read_requirements(env, python_version="3.11").lines
    assert lines == ["azure-functions", "numpy==1.26.4", "scipy==1.11.*"]


def test_azure_functions_added_once_and_not_duplicated(tmp_path: Path) -> None:
    without = _env(tmp_path, "dependencies:\n  - numpy\n  - pip:\n      - numpy\n", "a.yml")
    assert read_requirements(without, python_version="3.11").lines == ["azure-functions", "numpy"]
    pinned = _env(tmp_path, "dependencies:\n  - pip:\n      - numpy\n      - Azure_Functions==1.20\n", "b.yml")
    lines = read_requirements(pinned, python_version="3.11").lines
    assert lines == ["numpy", "Azure_Functions==1.20"]
    conda_pinned = _env(tmp_path, "dependencies:\n  - azure-functions=1.20\n", "c.yml")
    assert read_requirements(conda_pinned, python_version="3.11").lines == ["azure-functions==1.20.*"]


@pytest.mark.parametrize("spec", ["python=3.11", "python=3.11.7", "python>=3.8", "python"])
def test_python_pin_compatible_with_target_is_dropped(tmp_path: Path, spec: str) -> None:
    env = _env(tmp_path, f"dependencies:\n  - {spec}\n  - numpy\n")
    assert read_requirements(env, python_version="3.11").lines == ["azure-functions", "numpy"]


@pytest.mark.parametrize("spec", ["python=3.8", "python=3.1", "python==3.12"])
def test_python_pin_conflicting_with_target_is_an_error(tmp_path: Path, spec: str) -> None:
    env = _env(tmp_path, f"name: x\ndependencies:\n  - numpy\n  - {spec}\n")
    with pytest.raises(EnvironmentSpecError) as e:
        read_requirements(env, python_version="3.11")
    assert (e.value.field, e.value.line) == ("dependencies[1]", 4)
    assert "but the app targets Python 3.11" in e.value.message
    assert "python=3.11" in e.value.hint


def test_requirements_txt_comments_and_blank_lines(tmp_path: Path) -> None:
    # (an --index-url line is refused: tests/test_hardening_config.py)
    path = _env(tmp_path, "# pins for scoring\n\nnumpy>=1.26  # fast math\n"
                          "   \nscikit-learn==1.3.2\n", "requirements.txt")
    req = read_requirements(path, python_version="3.11")
    assert req.lines == ["azure-functions", "numpy>=1.26", "scikit-learn==1.3.2"]
    assert req.render().startswith("# Generated by modelfunc from requirements.txt")


def test_requirements_txt_dash_r_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = _env(tmp_path, "numpy\n# shared\n-r base.txt\n", "requirements.txt")
    with pytest.raises(EnvironmentSpecError) as e:
        read_requirements(path, python_version="3.11")
    assert e.value.line == 3
    assert e.value.file == str(path)
    assert str(e.value).startswith(f"{path}:3: requirements: '-r base.txt' is not supported")


def test_requirements_txt_invalid_line_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = _env(tmp_path, "numpy\nscipy>>1\n", "requirements.txt")
    with pytest.raises(EnvironmentSpecError) as e:
        read_requirements(path, python_version="3.11")
    assert e.value.line == 2
    assert "'scipy>>1' is not a valid pip requirement" in e.value.message


# ================================================================== compare.compare


def test_compare_within_tolerance_passes() -> None:
    assert compare([661.6371, 362.4341], [661.63712, 362.43409], 1e-4) == []
    assert compare({"a": 1, "b": [1.0, 2.0]}, {"b": [1.0, 2.0], "a": 1.0}, 0) == []  # int 1 == float 1.0
    assert compare(None, None, 0) == []
    assert compare("text", "text", 0) == []


def test_compare_outside_tolerance_names_the_index() -> None:
    got = compare([661.6371, 362.4341], [661.6371, 362.5], 1e-4)
    assert len(got) == 1
    m = got[0]
    assert (m.path, m.expected, m.actual) == ("[1]", 362.4341, 362.5)
    assert m.reason == "differs by 0.0659 > 0.0001"


def test_compare_nested_paths() -> None:
    got = compare({"a": {"b": 1.0}, "c": [0, {"d": "x"}]}, {"a": {"b": 2.0}, "c": [0, {"d": "y"}]}, 1e-6)
    assert [m.path for m in got] == [".a.b", ".c[1].d"]
    assert got[1].reason == "different value"


def test_compare_length_mismatch() -> None:
    got = compare({"p": [1, 2]}, {"p": [1, 2, 3]}, 0)
    assert len(got) == 1
    assert (got[0].path, got[0].reason) == (".p", "length 3, expected 2")


def test_compare_missing_and_extra_keys() -> None:
    got = compare({"a": 1, "b": 2}, {"a": 1, "c": 3}, 0)
    assert [(m.path, m.expected, m.actual, m.reason) for m in got] == [
        (".b", 2, None, "missing in output"),
        (".c", None, 3, "not expected"),
    ]


@pytest.mark.parametrize("expected, actual", [(True, 1), (1, True), (False, 0), (0.0, False), ([True], [1.0])])
def test_compare_bool_is_not_a_number(expected: object, actual: object) -> None:
    got = compare(expected, actual, 0.5)
    assert len(got) == 1
    assert got[0].reason == "different value"
    assert compare(expected, expected, 0) == []


def test_compare_type_mismatch() -> None:
    got = compare({"x": "1"}, {"x": 1}, 0)
    assert [(m.path, m.reason) for m in got] == [(".x", "type int, expected str")]
    assert compare([1], {"0": 1}, 0)[0].reason == "type dict, expected list"
    assert compare(0, None, 1)[0].reason == "type NoneType, expected int"


def test_compare_tolerance_is_relative_for_big_numbers_and_absolute_near_zero() -> None:
    assert compare(1e9, 1e9 + 500, 1e-6) == []  # 5e-7 relative
    assert len(compare(1e9, 1e9 + 5000, 1e-6)) == 1  # 5e-6 relative
    assert compare(0.0, 5e-7, 1e-6) == []  # absolute near zero
    assert len(compare(1e-3, 2e-3, 1e-6)) == 1
    assert len(compare(0.1 + 0.2, 0.3, 0)) == 1  # zero tolerance is exact


# ================================================================== config.load_project


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


@pytest.mark.parametrize(
    "written, version",
    [
        pytest.param("3.11", "3.11", id="3.11-unquoted"),
        pytest.param("3.12", "3.12", id="3.12-unquoted"),
        pytest.param("'3.10'", "3.10", id="3.10-quoted"),
        pytest.param("3.10", "3.10", id="3.10-unquoted"),
    ],
)
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
