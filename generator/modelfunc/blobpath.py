"""Blob path patterns as Azure Functions binding expressions take them: ``container/{name}.json``.

One parser shared by config validation, the rendered app and the local host, so the
three can never disagree on what ``input/{blobname}.json`` matches.

It is also the one normaliser of blob names and paths: a name or pattern with a ``.`` or ``..`` path segment
(also spelt ``%2e%2e``, or with ``\\`` for ``/``) is refused with :class:`BlobPathError`, because HTTP clients
resolve dot segments in the URL before it is sent (``in/../victim/x.json`` becomes ``victim/x.json``): such a
name would read or write a blob in another container. Every name this module hands out — a matched input, a
formatted output, a split ``container/name`` — stays inside its container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTAINER = re.compile(r"(?=.{3,63}\Z)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]")
CONTAINER_RULE = (
    "3-63 characters of lowercase letters, digits and single hyphens, starting and ending "
    "with a letter or digit (e.g. 'input')"
)
# Azure Storage's limits on a blob name (https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-
# containers--blobs--and-metadata#blob-names): 1-1,024 characters, at most 254 path segments.
MAX_BLOB_NAME = 1024
MAX_SEGMENTS = 254
_SEPARATORS = re.compile(r"[/\\]")
_DECODE_ROUNDS = 3  # %2e, %252e, %25252e: whatever a layer may decode before the URL is resolved


class BlobPathError(ValueError):
    """The pattern is not a valid ``container/blob`` binding path, or a blob name would leave its container."""


def _dot_segment(name: str) -> str | None:
    """The first segment of ``name`` that a URL resolver would take as ``.`` or ``..`` (as written), else None."""
    text = name
    for _ in range(_DECODE_ROUNDS + 1):
        for segment in _SEPARATORS.split(text):
            if segment in (".", ".."):
                return segment
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return None


def check_blob_name(name: object, *, what: str = "blob name") -> str:
    """``name`` when it is a blob name that stays inside its container; else :class:`BlobPathError` saying why.

    The rules: a string of 1-1,024 characters, at most 254 segments, and no ``.`` or ``..`` segment (``/`` and
    ``\\`` both separate segments; percent-encoded dots count as dots)."""
    if not isinstance(name, str) or not name:
        raise BlobPathError(f"the {what} is empty")
    if len(name) > MAX_BLOB_NAME:
        raise BlobPathError(f"the {what} is {len(name)} characters long; Azure Storage allows at most {MAX_BLOB_NAME}")
    if name.count("/") + 1 > MAX_SEGMENTS:
        raise BlobPathError(f"the {what} has more than {MAX_SEGMENTS} path segments, the most Azure Storage allows")
    dots = _dot_segment(name)
    if dots is not None:
        raise BlobPathError(f"the {what} {_short(name)} has a {dots!r} path segment, which would lead out of its "
                            "container: blob names and paths may not contain '.' or '..' segments")
    return name


def split(path: object) -> tuple[str, str]:
    """``container/name`` → (container, name), both checked (the name stays inside the container)."""
    if not isinstance(path, str) or "/" not in path:
        raise BlobPathError(f"{_short(path)} is not a blob path: write it as 'container/blob-name', "
                            "e.g. 'input/patient-1.json'")
    container, name = path.split("/", 1)
    if not _CONTAINER.fullmatch(container):
        raise BlobPathError(f"container name {_short(container)} is invalid: use {CONTAINER_RULE}")
    return container, check_blob_name(name)


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


@dataclass(frozen=True)
class BlobPath:
    """A parsed ``container/blob-pattern`` binding path."""

    pattern: str
    container: str
    blob_pattern: str
    placeholders: tuple[str, ...]

    @classmethod
    def parse(cls, pattern: str) -> BlobPath:
        if not isinstance(pattern, str) or "/" not in pattern:
            raise BlobPathError(
                f"{pattern!r} has no container: write it as 'container/blob-pattern', "
                "e.g. 'input/{blobname}.json'"
            )
        container, blob_pattern = pattern.split("/", 1)
        if "{" in container or "}" in container:
            raise BlobPathError(f"the container part {container!r} cannot contain a {{placeholder}}")
        if not _CONTAINER.fullmatch(container):
            raise BlobPathError(f"container name {container!r} is invalid: use {CONTAINER_RULE}")
        if not blob_pattern:
            raise BlobPathError(f"{pattern!r} names a container but no blob pattern after the '/'")
        stray = _PLACEHOLDER.sub("", blob_pattern)
        if "{" in stray or "}" in stray:
            raise BlobPathError(
                f"{pattern!r} has an unbalanced or invalid {{placeholder}}: "
                "placeholders are {name} with letters, digits and underscores"
            )
        names = tuple(_PLACEHOLDER.findall(blob_pattern))
        if len(set(names)) != len(names):
            raise BlobPathError(f"{pattern!r} uses the same placeholder twice")
        dots = _dot_segment(_PLACEHOLDER.sub("x", blob_pattern))
        if dots is not None:
            raise BlobPathError(
                f"{pattern!r} has a {dots!r} path segment, which would lead out of container {container!r}: "
                "write the path without '.' or '..' segments, e.g. 'output/{blobname}_out.json'"
            )
        return cls(pattern, container, blob_pattern, names)

    @property
    def prefix(self) -> str:
        """The literal start of blob names that can match (for listing with a prefix)."""
        return self.blob_pattern.split("{", 1)[0]

    def _parts(self) -> tuple[list[str], list[str]]:
        """(the literals, the placeholder names): literal[0] {name[0]} literal[1] … {name[k-1]} literal[k]."""
        literals, names, last = [], [], 0
        for m in _PLACEHOLDER.finditer(self.blob_pattern):
            literals.append(self.blob_pattern[last : m.start()])
            names.append(m.group(1))
            last = m.end()
        literals.append(self.blob_pattern[last:])
        return literals, names

    def match(self, blob_name: str) -> dict[str, str] | None:
        """The placeholder values when ``blob_name`` (without the container) matches, else None.

        Each placeholder takes at least one character, and as many as it can (as the regex ``(.+)`` per
        placeholder, anchored, would), found in time linear in the name, so no name can make it slow. A name that
        would leave the container (see :func:`check_blob_name`) never matches."""
        if not isinstance(blob_name, str):
            return None
        try:
            check_blob_name(blob_name)
        except BlobPathError:
            return None
        literals, names = self._parts()
        s, n, k = blob_name, len(blob_name), len(names)
        if not s.startswith(literals[0]) or (k == 0 and s != literals[0]):
            return None
        if k == 0:
            return {}
        if not s.endswith(literals[k]) or n - len(literals[k]) < len(literals[0]) + k:
            return None
        # ends[i]: the greatest position where placeholder i may end (literal i+1 starts there) with the rest still
        # matching; found from the right, so each placeholder then takes the most it can.
        ends = [0] * k
        ends[k - 1] = n - len(literals[k])
        for i in range(k - 2, -1, -1):
            literal = literals[i + 1]
            limit = ends[i + 1] - 1 - len(literal)  # placeholder i+1 needs at least one character
            pos = s.rfind(literal, 0, limit + len(literal)) if limit >= 0 else -1
            if pos < 0:
                return None
            ends[i] = pos
        values, start = {}, len(literals[0])
        for i, name in enumerate(names):
            if ends[i] <= start:
                return None
            values[name] = s[start : ends[i]]
            start = ends[i] + len(literals[i + 1])
        return values

    def format(self, values: dict[str, str]) -> str:
        """The blob name (without the container) for the given placeholder values; a name that would leave the
        container (values with ``..`` segments) is a :class:`BlobPathError`."""
        missing = [n for n in self.placeholders if n not in values]
        if missing:
            raise BlobPathError(f"{self.pattern!r} needs values for {', '.join(missing)}")
        name = _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.blob_pattern)
        return check_blob_name(name, what=f"blob name that {self.pattern!r} gives")
