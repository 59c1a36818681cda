"""Blob path patterns as Azure Functions binding expressions take them: ``container/{name}.json``.

One parser shared by config validation, the rendered app and the local host, so the
three can never disagree on what ``input/{blobname}.json`` matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
CONTAINER_RULE = (
    "3-63 characters of lowercase letters, digits and single hyphens, starting and ending "
    "with a letter or digit (e.g. 'input')"
)


class BlobPathError(ValueError):
    """The pattern is not a valid ``container/blob`` binding path."""


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
        if not _CONTAINER.match(container):
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
        return cls(pattern, container, blob_pattern, names)

    @property
    def prefix(self) -> str:
        """The literal start of blob names that can match (for listing with a prefix)."""
        return self.blob_pattern.split("{", 1)[0]

    def _regex(self) -> re.Pattern[str]:
        parts, last = [], 0
        for m in _PLACEHOLDER.finditer(self.blob_pattern):
            parts.append(re.escape(self.blob_pattern[last : m.start()]))
            parts.append(f"(?P<{m.group(1)}>.+)")
            last = m.end()
        parts.append(re.escape(self.blob_pattern[last:]))
        return re.compile("^" + "".join(parts) + "$", re.DOTALL)

    def match(self, blob_name: str) -> dict[str, str] | None:
        """The placeholder values when ``blob_name`` (without the container) matches, else None."""
        m = self._regex().match(blob_name)
        return m.groupdict() if m else None

    def format(self, values: dict[str, str]) -> str:
        """The blob name (without the container) for the given placeholder values."""
        missing = [n for n in self.placeholders if n not in values]
        if missing:
            raise BlobPathError(f"{self.pattern!r} needs values for {', '.join(missing)}")
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.blob_pattern)
