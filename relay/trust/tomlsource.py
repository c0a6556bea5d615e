"""TOML files with line numbers: tomllib parses, a line index locates keys.

tomllib reports syntax errors with a line but returns plain dicts; problems
found later (unknown keys, bad values) are located by scanning the source for
the table header or key that produced them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .problems import Problems

KeyPath = tuple[str | int, ...]

_KEY_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*""")
_HEADER = re.compile(r"^\s*(\[\[?)(.*?)\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(r"""^\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_.\s-])+?)\s*=""")


def _split_key(text: str) -> tuple[str, ...] | None:
    parts, pos = [], 0
    while pos < len(text):
        match = _KEY_PART.match(text, pos)
        if not match:
            return None
        token = match.group(1)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
        pos = match.end()
        if pos < len(text):
            if text[pos] != ".":
                return None
            pos += 1
    return tuple(parts)


def index_lines(source: str) -> dict[KeyPath, int]:
    """First line of every table header and key, by full key path (array tables by occurrence)."""
    index: dict[KeyPath, int] = {}
    arrays: dict[tuple[str, ...], int] = {}
    prefix: KeyPath = ()
    in_multiline = False
    # TOML's lines end at LF (CRLF included); splitlines() would also split at
    # U+2028 and the like inside a comment or string, and shift every later line.
    for number, line in enumerate(source.split("\n"), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_multiline:
            in_multiline = quotes % 2 == 0
            continue
        if quotes % 2 == 1:
            in_multiline = True
        header = _HEADER.match(line)
        if header and not _KEY_LINE.match(line):
            name = _split_key(header.group(2))
            if name is None:
                continue
            if header.group(1) == "[[":
                arrays[name] = arrays.get(name, -1) + 1
                prefix = (*name, arrays[name])
            else:
                prefix = name
            # The enclosing tables too: one given only as [table.sub] or [[table]]
            # is located at its first header.
            for end in range(1, len(name) + 1):
                index.setdefault(name[:end], number)
            index.setdefault(prefix, number)
            continue
        key = _KEY_LINE.match(line)
        if key:
            parts = _split_key(key.group(1).strip())
            if parts:
                for end in range(1, len(parts) + 1):
                    index.setdefault((*prefix, *parts[:end]), number)
    return index


@dataclass(frozen=True)
class TomlFile:
    path: Path
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(repr=False)

    def where(self, keypath: Iterable[str | int] = ()) -> str:
        """`file:line` of the key (or of its closest enclosing table)."""
        return f"{self.path}:{line_of(self.lines, tuple(keypath)) or 1}"


def line_of(lines: Mapping[KeyPath, int], keypath: KeyPath) -> int | None:
    """The line of the key, else of its closest enclosing table; None when none is in the file."""
    for end in range(len(keypath), 0, -1):
        line = lines.get(keypath[:end])
        if line is not None:
            return line
    return None


def read_document(raw: bytes) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """A TOML file's document and the line of each key; UnicodeDecodeError or
    tomllib.TOMLDecodeError when it is not one (`not_utf8` words the first)."""
    text = raw.decode("utf-8")
    return tomllib.loads(text), index_lines(text)


def not_utf8(error: UnicodeDecodeError) -> str:
    return f"not UTF-8 ({error.reason} at byte {error.start})"


def parse_toml(path: Path, raw: bytes, problems: Problems) -> TomlFile | None:
    try:
        data, lines = read_document(raw)
    except UnicodeDecodeError as error:
        problems.error(f"{path}:1", not_utf8(error))
        return None
    except tomllib.TOMLDecodeError as error:
        problems.error(f"{path}:{_error_line(str(error))}", f"TOML syntax: {error}")
        return None
    return TomlFile(path, data, lines)


def _error_line(message: str) -> int:
    match = re.search(r"at line (\d+)", message)
    return int(match.group(1)) if match else 1


class Table:
    """Typed, strict reading of one TOML table: every key read is remembered,
    and `done()` reports those never read as unknown."""

    def __init__(self, source: TomlFile, keypath: KeyPath, data: Any, problems: Problems) -> None:
        self.source, self.keypath, self.problems = source, keypath, problems
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self._seen: set[str] = set()
        if not isinstance(data, dict):
            problems.error(self.where(), f"{self.name} must be a table")

    @property
    def name(self) -> str:
        return ".".join(_quote(p) for p in self.keypath) or "top level"

    def where(self, key: str | None = None) -> str:
        return self.source.where(self.keypath + ((key,) if key else ()))

    def error(self, key: str | None, message: str) -> None:
        self.problems.error(self.where(key), message)

    def _get(self, key: str, kind: type | tuple[type, ...], what: str, default: Any) -> Any:
        self._seen.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(key, f"{self.name}.{key} must be {what}")
            return default
        return value

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: str | None = None, *, required: bool = False, choices: Iterable[str] = ()) -> str | None:
        if required and key not in self.data:
            self.error(None, f"{self.name}: missing required key {key!r}")
        value = self._get(key, str, "a string", default)
        choices = tuple(choices)
        if value is not None and choices and value not in choices:
            self.error(key, f"{self.name}.{key} = {value!r}: expected one of {', '.join(choices)}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        return self._get(key, bool, "true or false", default)

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, list, "a list of strings", None)
        if value is None:
            return default
        if not all(isinstance(v, str) for v in value):
            self.error(key, f"{self.name}.{key} must be a list of strings")
            return default
        return tuple(value)

    def integer(self, key: str, default: int) -> int:
        return self._get(key, int, "an integer", default)

    def table(self, key: str) -> "Table | None":
        self._seen.add(key)
        if key not in self.data:
            return None
        return Table(self.source, self.keypath + (key,), self.data[key], self.problems)

    def subtables(self, key: str) -> list["Table"]:
        """The named tables under [key.NAME] (a table of tables)."""
        outer = self.table(key)
        if outer is None:
            return []
        outer.accept_all()
        return [Table(self.source, outer.keypath + (name,), value, self.problems) for name, value in outer.data.items()]

    def mark_known(self, key: str) -> None:
        """A key read by someone else (a registered section)."""
        self._seen.add(key)

    def accept_all(self) -> None:
        """Mark every key as known (a section validated elsewhere)."""
        self._seen.update(self.data)

    def done(self) -> None:
        for key in self.data:
            if key not in self._seen:
                self.problems.error(self.where(key), f"unknown key {key!r} in {self.name}")


def _quote(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'


Validator = Callable[[Table], None]
