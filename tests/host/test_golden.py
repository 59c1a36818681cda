"""One golden answer, four places: `modelfunc up` and the action put the sample's answer from run() called directly,
the local host, the image's self-test and the staging slot side by side, and fail naming the first place that
answers differently (byte for byte, or beyond the sample's tolerance), also when each answer alone is within the
tolerance of samples/expected.json.

The image column on a real Docker engine is in tests/image/test_image.py (it needs that module's engine and base image).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from modelfunc import golden
from modelfunc.action.handoff import load_golden, save_deployment, save_golden
from modelfunc.action.summaries import summary_for_golden
from modelfunc.errors import OptionError
from modelfunc.golden import DIRECT, IMAGE, LOCAL_HOST, PLACES, SLOT, Answer, Golden
from support.action_step import load_script
from support.core import run_modelfunc

ANSWER = b"[661.6371, 362.4341]"  # what examples/diabetes-http answers to its sample, byte for byte

# run() answers 0.991 when called directly (the runtime's self-test child), 1.009 in the local host (`python -m
# modelfunc serve`), and 1.009 in the image's self-test (its sample is mounted at /modelfunc-selftest): each is
# within 0.01 of the expected 1.0, but two of them differ by 0.018 — only the golden table catches it.
DRIFTING_SCORE = '''\
import os
import sys


def init():
    pass


def run(data):
    direct = sys.argv[0].endswith("modelfunc_runtime.py") and not os.path.exists("/modelfunc-selftest")
    return {"value": 0.991 if direct else 1.009}
'''


def drifting_repo(example) -> Path:  # noqa: ANN001
    repo = example("diabetes-http")
    (repo / "score.py").write_text(DRIFTING_SCORE)
    (repo / "samples" / "expected.json").write_text('{"value": 1.0}\n')
    config = (repo / "modelfunc.yaml").read_text().replace("tolerance: 1.0e-4", "tolerance: 0.01")
    (repo / "modelfunc.yaml").write_text(config)
    return repo


# ------------------------------------------------------------------------------------ the table's judgement


def table(expected=None, tolerance: float = 0.01, **answers: Answer) -> Golden:  # noqa: ANN001
    g = Golden("samples/input.json", tolerance, {"value": 1.0} if expected is None else expected)
    for key, answer in answers.items():
        g.set({"direct": DIRECT, "host": LOCAL_HOST, "image": IMAGE, "slot": SLOT}[key], answer)
    return g


def test_identical_bytes_everywhere_pass_and_say_so() -> None:
    body = b'{"value": 1.0}'
    g = table(direct=Answer("py", body), host=Answer("h", body), image=Answer("i", body), slot=Answer("s", body))
    assert g.passed and g.first_failure() is None
    assert [(v.place, v.same, v.expected) for v in g.verdicts()] == [
        (DIRECT, "reference", "matches"), (LOCAL_HOST, "identical", "matches"), (IMAGE, "identical", "matches"),
        (SLOT, "identical", "matches")]
    g.check()  # does not raise


def test_different_bytes_of_the_same_json_within_tolerance_pass() -> None:
    g = table(direct=Answer("py", b'{"value": 1.0}'), host=Answer("h", b'{ "value" : 1.004 }'))
    verdicts = {v.place: v for v in g.verdicts()}
    assert verdicts[LOCAL_HOST].same == "within tolerance" and verdicts[LOCAL_HOST].expected == "within tolerance"
    assert g.passed


def test_two_answers_each_within_tolerance_of_expected_but_not_of_each_other_fail_naming_the_place() -> None:
    g = table(direct=Answer("this Python", b'{"value": 0.991}'), host=Answer("http://127.0.0.1:1", b'{"value": 1.009}'),
              slot=Answer(skipped="target local"))
    failure = g.first_failure()
    assert failure is not None and failure.startswith("local host (http://127.0.0.1:1) answered differently vs "
                                                      "run() directly: .value: 0.991 vs 1.009")
    with pytest.raises(golden.GoldenMismatch) as e:
        g.check()
    assert e.value.exit_code == 1 and "first difference: local host" in str(e.value)


def test_a_failed_place_is_the_first_failure_even_when_the_others_agree() -> None:
    g = table(direct=Answer("py", b'{"value": 1.0}'), host=Answer("h", error="HTTP 500: boom"),
              image=Answer("i", b'{"value": 1.0}'))
    assert g.first_failure() == "local host (h) failed: HTTP 500: boom"


def test_non_json_answers_compare_as_bytes() -> None:
    g = table(expected=b"yes\n", direct=Answer("py", b"yes\n"), host=Answer("h", b"yes\r\n"))
    assert g.first_failure() is not None and "local host (h) answered differently" in g.first_failure()
    assert table(expected=b"yes\n", direct=Answer("py", b"yes\n"), host=Answer("h", b"yes\n")).passed


def test_a_table_where_nothing_answered_fails() -> None:
    g = table(direct=Answer(skipped="x"), host=Answer(skipped="y"))
    assert g.first_failure() == "no place answered the sample"


def test_the_table_travels_between_steps_as_json(tmp_path: Path) -> None:
    g = table(expected=b"\xff\x00", direct=Answer("py", b"\xff\x00", 200), image=Answer("i", error="boom", status=500),
              host=Answer(skipped="target azure"))
    back = load_golden(save_golden(g, tmp_path / "g.json"))
    assert back.to_dict() == g.to_dict() and back.expected == b"\xff\x00"
    assert back.answer(DIRECT).body == b"\xff\x00" and back.answer(IMAGE).error == "boom"
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(OptionError, match="is not a golden table an earlier step wrote"):
        load_golden(tmp_path / "bad.json")


def test_text_and_markdown_have_one_column_per_place() -> None:
    g = table(direct=Answer("py", b'{"value": 1.0}'), host=Answer("h|x", b'{"value": 1.0}'),
              slot=Answer(skipped="target local"))
    text = g.render_text().splitlines()
    assert text[0].startswith("PASS: the answer to samples/input.json in each place")
    assert all(place in text[1] for place in PLACES)
    md = summary_for_golden(g)
    assert "| | run() directly | local host | image self-test | staging slot |" in md
    answer_row = next(ln for ln in md.splitlines() if ln.startswith("| answer |"))
    assert answer_row.count("<code>") == 2
    assert "not run: target local" in answer_row and "not run: not reached" in answer_row
    assert "h&#124;x" in md  # a cell cannot break the table


# ------------------------------------------------------------------------------------ modelfunc up


def test_up_prints_the_table_with_run_directly_and_the_local_host_identical(example, tmp_path) -> None:
    repo = example("diabetes-http")
    result = run_modelfunc("up", str(repo), "--image", "off", "--golden", str(tmp_path / "g.json"), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "==> score the sample with run() called directly" in result.stderr
    lines = result.stdout.splitlines()
    head = lines.index("PASS: the answer to samples/input.json in each place (tolerance 0.0001)")
    assert all(place in lines[head + 1] for place in PLACES)
    assert "not run: no image built (--image off)" in result.stdout and "not run: target local" in result.stdout
    data = json.loads((tmp_path / "g.json").read_text())
    sha = hashlib.sha256(ANSWER).hexdigest()
    assert data["answers"][DIRECT]["sha256"] == data["answers"][LOCAL_HOST]["sha256"] == sha
    assert data["passed"] is True and data["first_failure"] is None


def test_up_fails_when_the_local_host_answers_differently_from_run_directly(example) -> None:
    repo = drifting_repo(example)
    result = run_modelfunc("up", str(repo), "--image", "off", timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("PASS: http round trip")  # the round trip alone is within tolerance
    assert "FAIL: the answer to samples/input.json in each place (tolerance 0.01)" in result.stdout
    assert ("error: the sample's answers differ: local host (http://127.0.0.1:" in result.stderr
            and ") answered differently vs run() directly: .value: 0.991 vs 1.009" in result.stderr)


# ------------------------------------------------------------------------------------ the action


def test_the_up_step_publishes_the_table_as_summary_and_output(example, step, capfd) -> None:  # noqa: ANN001
    step.inputs(model_repo=str(example("diabetes-http")), build_image="false")
    assert load_script("up").main([]) == 0
    out = capfd.readouterr().out
    assert "PASS: the answer to samples/input.json in each place" in out
    summary = step.summary_text()
    assert "### modelfunc golden answer: ✅ the same answer everywhere" in summary
    assert "| | run() directly | local host | image self-test | staging slot |" in summary
    assert f"| answer | <code>{ANSWER.decode()}</code> | <code>{ANSWER.decode()}</code> |" in summary
    table_ = load_golden(Path(step.outputs()["golden"]))
    assert table_.answer(DIRECT).body == table_.answer(LOCAL_HOST).body == ANSWER


def test_the_up_step_fails_naming_the_place_that_differs(example, step, capfd) -> None:  # noqa: ANN001
    step.inputs(model_repo=str(drifting_repo(example)), build_image="false")
    assert load_script("up").main([]) == 1
    out = capfd.readouterr().out
    errors = [ln for ln in out.splitlines() if ln.startswith("::error ")]
    assert len(errors) == 1 and errors[0].startswith("::error title=modelfunc%3A GoldenMismatch::the sample's "
                                                     "answers differ: local host (http://127.0.0.1")
    assert step.outputs()["test-result"] == "pass"  # the round trip alone passed; the table did not
    assert "### modelfunc golden answer: ❌ the answers differ" in step.summary_text()


def test_a_bad_build_image_input_is_a_config_error(example, step, capfd) -> None:  # noqa: ANN001
    step.inputs(model_repo=str(example("diabetes-http")), build_image="maybe")
    assert load_script("up").main([]) == 2
    assert "build-image: 'maybe' is not a build-image value" in capfd.readouterr().out


def test_the_azure_test_step_adds_the_slots_answer_to_the_package_steps_table(example, step, serve, monkeypatch,
                                                                            capfd) -> None:  # noqa: ANN001
    """The slot is a running local host here (no Azure): the test step's own logic — load the package step's table,
    add the slot's answer, publish, fail on a difference — is what runs."""
    from modelfunc.azure.results import ServiceState, SlotDeployment
    from modelfunc.config import load_project
    from modelfunc.roundtrip import round_trip

    repo = drifting_repo(example)
    host = serve(repo)
    deployment = SlotDeployment("sub", "rg", "app", "staging", "reg/app@sha256:" + "0" * 64, "https://app",
                                "https://app-staging", ServiceState.HEALTHY, True, ("score",))
    handed = save_deployment(deployment, step.root / "deployment.json")
    monkeypatch.setattr("modelfunc.azure.credentials.get_credential", lambda **kw: object())
    monkeypatch.setattr("modelfunc.azure.test_slot",
                        lambda project, deployment, **kw: round_trip(project, host_url=host.url, timeout=30))
    project = load_project(repo)
    earlier = golden.for_project(project)  # what the package step handed over: both answers from inside the image
    earlier.set(DIRECT, Answer("image (no function)", b'{"value": 1.009}', 200))
    earlier.set(IMAGE, Answer("image", b'{"value": 1.009}', 200))
    earlier.set(LOCAL_HOST, Answer(skipped="the app does not run on the runner (target azure)"))
    step.inputs(model_repo=str(repo), deployment=str(handed),
                golden=str(save_golden(earlier, step.root / "package-golden.json")))
    assert load_script("blob_test").main([]) == 0  # the "slot" (a local host) answers 1.009 too
    table_ = load_golden(Path(step.outputs()["golden"]))
    assert table_.answer(SLOT).where == "https://app-staging" and table_.answer(SLOT).body == b'{"value": 1.009}'
    assert "| staging slot |" in step.summary_text() and "✅" in step.summary_text()

    earlier.set(IMAGE, Answer("image", b'{"value": 0.991}', 200))  # had the image answered otherwise...
    earlier.set(DIRECT, Answer("image (no function)", b'{"value": 0.991}', 200))
    save_golden(earlier, step.root / "package-golden.json")
    assert load_script("blob_test").main([]) == 1
    assert ("the sample's answers differ: staging slot (https://app-staging) answered differently vs run() directly"
            in capfd.readouterr().out)


def test_without_a_package_step_flex_shows_why_the_image_columns_are_empty(example, step, serve,
                                                                           monkeypatch) -> None:  # noqa: ANN001
    from modelfunc.azure.results import ServiceState, SlotDeployment
    from modelfunc.roundtrip import round_trip

    repo = example("diabetes-http")
    host = serve(repo)
    deployment = SlotDeployment("sub", "rg", "app", None, "", "https://app", "https://app", ServiceState.HEALTHY,
                                True, ("score",))
    monkeypatch.setattr("modelfunc.azure.credentials.get_credential", lambda **kw: object())
    monkeypatch.setattr("modelfunc.azure.test_slot",
                        lambda project, deployment, **kw: round_trip(project, host_url=host.url, timeout=30))
    step.inputs(model_repo=str(repo), deployment=str(save_deployment(deployment, step.root / "d.json")))
    assert load_script("blob_test").main([]) == 0
    table_ = load_golden(Path(step.outputs()["golden"]))
    assert table_.answer(IMAGE).skipped == "no image (flex: the app is zip-deployed)"
    assert table_.answer(SLOT).where == "https://app (flex: no slot)" and table_.answer(SLOT).body == ANSWER


def test_up_auto_without_an_engine_says_why_the_image_column_is_empty(example) -> None:
    repo = example("diabetes-http")
    result = run_modelfunc("up", str(repo), "--image", "auto", env={"DOCKER_HOST": "unix:///nonexistent.sock"},
                           timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(no image built: no Docker engine answers at unix:///nonexistent.sock" in result.stderr
    assert "not run: no image built: no Docker engine answered (--image auto)" in result.stdout
