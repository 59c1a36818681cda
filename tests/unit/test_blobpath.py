"""modelfunc.blobpath: parsing, matching and formatting the blob path patterns of a blob trigger."""

from __future__ import annotations

import pytest
from modelfunc.blobpath import BlobPath, BlobPathError


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


def test_a_container_name_with_a_trailing_newline_is_refused() -> None:
    """Container names are matched whole ('input\\n' passed a `^...$` rule read with re.match)."""
    assert BlobPath.parse("input/{blobname}.json").container == "input"
    with pytest.raises(BlobPathError):
        BlobPath.parse("input\n/{blobname}.json")
