"""modelfunc.compare.compare: an answer against the expected output, within the sample's tolerance."""

from __future__ import annotations

import pytest
from modelfunc.compare import compare


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
