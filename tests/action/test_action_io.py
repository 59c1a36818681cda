"""The action wing's GitHub Actions I/O (modelfunc/action/io.py: outputs, masks, annotations, groups, inputs) and its
step summaries (modelfunc/action/summaries.py), as the runner reads them."""

from __future__ import annotations

import pytest
from modelfunc import roundtrip
from modelfunc.action import io, summaries
from modelfunc.compare import Mismatch
from modelfunc.errors import ConfigError
from support.action_step import Step

# ------------------------------------------------------------------------------------ action/io.py


def test_multiline_outputs_round_trip(step: Step) -> None:
    values = {"plain": "x", "multi": "line 1\nline 2\n\nline 4", "empty": "", "eq": "a=b<<c",
              "trailing": "ends with newline\n"}
    for name, value in values.items():
        io.set_output(name, value)
    assert step.outputs() == values


def test_the_delimiter_never_collides(step: Step, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"])
    monkeypatch.setattr(io.uuid, "uuid4", lambda: next(ids))
    value = "before\nghadelimiter_11111111-1111-1111-1111-111111111111\nafter"
    text = io.set_output("tricky", value)
    assert text.startswith("tricky<<ghadelimiter_22222222-")
    assert step.outputs() == {"tricky": value}


def test_annotation_escaping() -> None:
    text = io.error("50% done\r\nnext: a, b", title="t: 1, 2%", file="dir/a,b:c.yaml", line=7)
    assert text == "::error file=dir/a%2Cb%3Ac.yaml,line=7,title=t%3A 1%2C 2%25::50%25 done%0D%0Anext: a, b\n"
    assert io.escape_data("%\r\n:,") == "%25%0D%0A:,"
    assert io.escape_property("%\r\n:,") == "%25%0D%0A%3A%2C"
    assert io.error("m") == "::error::m\n"


def test_file_paths_are_relative_to_the_workspace(step: Step, capfd) -> None:
    io.error("bad", title="x", file=str(step.root / "repo" / "modelfunc.yaml"), line=3)
    assert capfd.readouterr().out == "::error file=repo/modelfunc.yaml,line=3,title=x::bad\n"


def test_each_line_of_a_secret_is_masked(step: Step, capfd) -> None:
    io.mask("-----BEGIN KEY-----\r\nabc%def\n\n  \nlast")
    assert capfd.readouterr().out.splitlines() == [
        "::add-mask::-----BEGIN KEY-----", "::add-mask::abc%25def", "::add-mask::last"]
    io.mask("")
    assert capfd.readouterr().out == ""


def test_groups(step: Step, capfd) -> None:
    with pytest.raises(RuntimeError), io.group("a: b"):
        print("inside")
        raise RuntimeError
    assert capfd.readouterr().out.splitlines() == ["::group::a: b", "inside", "::endgroup::"]


def test_nothing_is_written_outside_actions(step: Step, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert not io.in_actions()
    assert io.set_output("x", "1").startswith("x<<ghadelimiter_")
    assert io.add_summary("# hi") == "# hi\n"
    assert io.mask("secret") == "::add-mask::secret\n"
    assert io.error("oops", title="t") == "::error title=t::oops\n"
    with io.group("g"):
        pass
    assert capfd.readouterr().out == ""
    assert step.output.read_text() == "" and step.summary_text() == ""
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    assert not io.in_actions()


def test_inputs_follow_githubs_name_mangling(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"INPUT_MODEL-REPO": " repo ", "INPUT_MY_SETTING": "v", "INPUT_RUN_BLOB_TEST": "FALSE", "OTHER": "x"}
    assert io.input_env_name("model-repo") == "INPUT_MODEL-REPO"
    assert io.input_env_name("my setting") == "INPUT_MY_SETTING"
    assert io.get_input("model-repo", env=env) == "repo"
    assert io.get_input("my setting", env=env) == "v"
    assert io.get_bool("run-blob-test", True, env=env) is False
    assert io.get_input("missing", "dflt", env=env) == "dflt"
    with pytest.raises(ConfigError) as info:
        io.get_input("missing", required=True, env=env)
    assert info.value.field == "missing"
    with pytest.raises(ConfigError):
        io.get_float("t", 60.0, env={"INPUT_T": "-1"})
    assert io.get_float("t", 60.0, env={"INPUT_T": "2.5"}) == 2.5


def test_the_test_summary_escapes_table_cells() -> None:
    report = roundtrip.TestReport(False, "http", "http://x|y", "samples/input.json", latency_ms=12.3, tolerance=1e-6,
                        expected={"a": "p|q"}, actual={"a": "<b>\nr"},
                        mismatches=[Mismatch(".a", "p|q", "<b>\nr", "different value")])
    text = summaries.summary_for_test(report)
    assert "| target | http://x&#124;y |" in text
    assert ("| .a | <code>&quot;p&#124;q&quot;</code> | <code>&quot;&lt;b&gt;\\nr&quot;</code> | "
            "different value |") in text
    assert "| latency | 12 ms |" in text
    assert summaries.summary_for_test(report.to_dict()) == text


def test_the_image_summary_names_the_digest() -> None:
    summary = {"app": "/b/app", "reference": "reg:5000/m@sha256:" + "a" * 64, "digest": "sha256:" + "a" * 64,
               "tag": "reg:5000/m:abc", "self_test": {"passed": True, "elapsed_ms": 40},
               "layer_tars": {"model": "sha256:" + "b" * 64, "code": "sha256:" + "c" * 64},
               "pushed_layers": {"c" * 12: 2048}}
    text = summaries.summary_for_image(summary)
    assert f"| image | <code>reg:5000/m@sha256:{'a' * 64}</code> |" in text
    assert "| self-test | ✅ passed in 40 ms |" in text
    assert f"| digest | sha256:{'a' * 64} |" in text
    assert f"| code | sha256:{'c' * 64} | 2048 bytes |" in text
    assert f"| model | sha256:{'b' * 64} | — |" in text
