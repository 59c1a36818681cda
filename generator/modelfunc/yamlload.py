"""The one YAML reader for every YAML file modelfunc reads (modelfunc.yaml, environment.yml / conda files).

YAML is a small language with large corners, and these files come from a model repo, which may come from anyone.
:func:`load_yaml` reads a file with limits and turns every problem into a :class:`~modelfunc.errors.ModelfuncError`
naming the file and the line:

* size: at most :data:`MAX_YAML_BYTES` (a modelfunc.yaml is a few hundred bytes; parsing is pure Python);
* nesting: at most :data:`MAX_DEPTH` levels, counting what aliases copy in (3,000 levels crashed the parser);
* aliases: at most :data:`MAX_ALIASES` uses of ``*name``, copying in at most :data:`MAX_ALIAS_NODES` values in all
  (a 556-byte "billion laughs" document grows exponentially), and never an alias inside its own anchor;
* duplicate keys: refused with both lines (YAML keeps the last silently: ``trigger: http`` then ``trigger: blob``
  would package a blob app);
* values the safe constructor cannot build (``!!int x``, a date such as ``2023-02-30``): an error, not a traceback.

:func:`read_text` is the bounded, UTF-8, regular-file-only read under it, shared with requirements.txt.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from .errors import ConfigError, ModelfuncError

try:  # libyaml's parser when PyYAML has it: 3-5 times faster (the composer and the checks stay the ones below)
    from yaml.cyaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None

KiB = 1024
MAX_YAML_BYTES = 256 * KiB
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_ALIAS_NODES = 10_000
MERGE_TAG = "tag:yaml.org,2002:merge"
VALUE_TAG = "tag:yaml.org,2002:value"


def _size(n: int) -> str:
    if n < KiB:
        return f"{n} bytes"
    return f"{n / KiB:.0f} KiB" if n < KiB * KiB else f"{n / KiB / KiB:.1f} MiB"


def read_text(path: Path, *, what: str, max_bytes: int, error: type[ModelfuncError] = ConfigError) -> str:
    """The file's text: a regular file, readable, at most ``max_bytes``, UTF-8. Anything else is ``error``."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error("not found", file=path) from None
    except OSError as e:
        raise error(f"cannot be read: {e.strerror}", file=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"is a directory; {what} must be a file", file=path)
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device: open() would wait for a writer, or never end
        raise error(f"is not a regular file; {what} must be a plain file", file=path)
    if info.st_size > max_bytes:
        raise error(f"is {_size(info.st_size)}: {what} may be at most {_size(max_bytes)}", file=path,
                    hint=f"{what} holds settings, a few KiB at most: is this the right file?")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except PermissionError:
        raise error("cannot be read: permission denied", file=path,
                    hint=f"make it readable by the user running modelfunc, e.g. chmod a+r {path.name}") from None
    except OSError as e:
        raise error(f"cannot be read: {e.strerror}", file=path) from None
    if len(raw) > max_bytes:  # grew since stat()
        raise error(f"is larger than {_size(max_bytes)}, the most {what} may be", file=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what} is not UTF-8 text ({e.reason} at byte {e.start})", file=path,
                    hint="save the file as UTF-8") from None


# ---------------------------------------------------------------- the loader


class YamlLimitError(yaml.MarkedYAMLError):
    """A document refused on purpose (over a limit, a duplicate key, a value that cannot be built): reported as
    itself, with its own hint, not as "not valid YAML"."""

    def __init__(self, problem: str, mark: Any, hint: str, field: str | None = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint
        self.field = field  # the key path the problem is about, when it is about one


class SourceFloat(float):
    """A YAML float that remembers how it was written (``3.10`` is not ``3.1`` for a Python version)."""

    source: str


class _Composer(Composer):
    """PyYAML's composer, counting nesting and aliases as it goes (its recursion is what 3,000 levels broke)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.alias_uses: list[tuple[Any, Node]] = []  # (the alias's mark, the node it copies in)
        self.open_anchors: set[str] = set()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            if event.anchor in self.open_anchors:
                raise YamlLimitError(
                    f"has the alias *{event.anchor} inside its own anchor &{event.anchor}, which would make an "
                    "endless structure", event.start_mark, "write the value out instead of the alias")
            if len(self.alias_uses) >= MAX_ALIASES:
                raise YamlLimitError(f"uses more than {MAX_ALIASES} aliases (*name)", event.start_mark,
                                     "write the values out instead of repeating aliases")
            node = super().compose_node(parent, index)
            self.alias_uses.append((event.start_mark, node))
            return node
        event = self.peek_event()
        if self.depth >= MAX_DEPTH:
            raise YamlLimitError(f"is nested more than {MAX_DEPTH} levels deep", event.start_mark,
                                 "a real file needs a few levels: check the indentation and the brackets")
        anchor = getattr(event, "anchor", None)
        self.depth += 1
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.discard(anchor)


class _Constructor(SafeConstructor):
    """The safe constructor; a value it cannot build (``!!int x``, ``2023-02-30``) is a marked YAML error."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as e:  # noqa: BLE001 - ValueError, KeyError, AttributeError, OverflowError ... from PyYAML
            if not isinstance(node, ScalarNode):
                raise YamlLimitError(f"has a {node.id} YAML cannot build ({type(e).__name__}: {e})", node.start_mark,
                                     "check the value's tag and contents") from None
            shown = node.value if len(node.value) <= 60 else node.value[:57] + "..."
            raise YamlLimitError(
                f"has the value {shown!r}, which is no valid {node.tag.rsplit(':', 1)[-1]} ({type(e).__name__}: "
                f"{str(e)[:200]})", node.start_mark, f"quote it to keep it as text: '{shown}'") from None


def _construct_float(loader: SafeConstructor, node: ScalarNode) -> float:
    value = SourceFloat(loader.construct_yaml_float(node))
    value.source = str(node.value)
    return value


_Constructor.add_constructor("tag:yaml.org,2002:float", _construct_float)


class _Loader(Reader, Scanner, Parser, _Composer, _Constructor, Resolver):
    """PyYAML's pure-Python reader, scanner and parser: the error messages users know."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _Composer.__init__(self)
        _Constructor.__init__(self)
        Resolver.__init__(self)


if CParser is not None:

    class _FastLoader(_Composer, CParser, _Constructor, Resolver):  # type: ignore[misc, valid-type]
        """libyaml's events, composed and checked by the same composer (its own composer is not used)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Composer.__init__(self)
            _Constructor.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover
    _FastLoader = None  # type: ignore[assignment, misc]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: Node, alias_uses: list[tuple[Any, Node]]) -> None:
    """Refuse aliases that copy in too much, or nest too deep once copied in (no alias cycles: the composer)."""
    if not alias_uses:
        return
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: aliases can make the copied-in structure deeper than Python's stack
        node, done = stack.pop()
        key = id(node)
        if key in size:
            continue
        kids = _children(node)
        if not done:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in size)
        else:
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
    copied = size[id(root)] - len(size)
    mark, _ = max(alias_uses, key=lambda use: size[id(use[1])])
    if copied > MAX_ALIAS_NODES:
        raise YamlLimitError(
            f"has aliases that copy in {copied:,} values, more than the {MAX_ALIAS_NODES:,} allowed (each *name "
            "copies its anchor's whole content, and nested aliases multiply)", mark,
            "write the values out instead of nesting aliases")
    if depth[id(root)] > MAX_DEPTH:
        raise YamlLimitError(f"is nested more than {MAX_DEPTH} levels deep once its aliases are copied in", mark,
                             "write the values out instead of nesting aliases")


def _index(loader: _Loader, root: Node) -> dict[tuple[str, ...], int]:
    """Each key path's 1-based line; a key given twice in one mapping is refused with both lines."""
    index: dict[tuple[str, ...], int] = {}
    checked: set[int] = set()

    def walk(node: Node, path: tuple[str, ...]) -> None:
        if isinstance(node, MappingNode):
            if id(node) not in checked:
                checked.add(id(node))
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == MERGE_TAG:
                        continue
                    # "=" (the value key) is the text "=" to the constructor's flatten_mapping
                    key = "=" if key_node.tag == VALUE_TAG else loader.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # unhashable: the constructor refuses it with its own message
                        continue
                    line = key_node.start_mark.line + 1
                    if first is not None:
                        raise YamlLimitError(
                            f"{key!r} is given twice, on lines {first} and {line}: YAML would keep only the second "
                            "and silently ignore the first", key_node.start_mark, "keep one of them",
                            field=".".join((*path, str(key))))
                    seen[key] = line
            for key_node, value in node.value:
                k = (*path, str(key_node.value))
                index.setdefault(k, key_node.start_mark.line + 1)
                walk(value, k)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                index.setdefault((*path, str(i)), item.start_mark.line + 1)
                walk(item, (*path, str(i)))

    walk(root, ())
    return index


def parse_yaml(text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """(data, line index) of one YAML document; raises ``yaml.YAMLError`` (a :class:`YamlLimitError` over a limit).

    libyaml parses first when it is there; a document it refuses is parsed again by PyYAML's own parser, so that
    the error is the one PyYAML gives (and a document only one of them takes is taken)."""
    if _FastLoader is not None:
        try:
            return _parse(_FastLoader, text)
        except YamlLimitError:
            raise
        except (yaml.YAMLError, UnicodeError):
            pass
    return _parse(_Loader, text)


def _parse(kind: type, text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    loader = kind(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        _check_expansion(root, loader.alias_uses)
        lines = _index(loader, root)
        return loader.construct_document(root), lines
    finally:
        loader.dispose()


def load_yaml(path: Path, *, what: str, error: type[ModelfuncError] = ConfigError,
              max_bytes: int = MAX_YAML_BYTES) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Read and parse a YAML file within the limits: (data, each key path's line). Every problem is ``error``."""
    text = read_text(path, what=what, max_bytes=max_bytes, error=error)
    try:
        return parse_yaml(text)
    except YamlLimitError as e:
        raise error(e.problem if e.field else f"{what} {e.problem}", file=path, field=e.field,
                    line=e.problem_mark.line + 1 if e.problem_mark else None, hint=e.hint) from None
    except yaml.reader.ReaderError as e:
        char = e.character if isinstance(e.character, int) else ord(e.character)
        raise error(f"{what} is not valid YAML: it holds the character U+{char:04X}, which YAML does not allow",
                    file=path, line=text[:max(e.position, 0)].count("\n") + 1,
                    hint="remove it: YAML allows printable text, tabs and line breaks") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise error(
            f"{what} is not valid YAML: {problem}" + (f" (column {mark.column + 1})" if mark else ""),
            file=path,
            line=mark.line + 1 if mark else None,
            hint="check the indentation and that every 'key: value' has a space after the colon",
        ) from None
