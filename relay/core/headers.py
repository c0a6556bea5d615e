"""Header blocks (RFC 5322 §2.2, §3.6; RFC 2045, RFC 2183), read strictly from bytes.

A header block ends at the first empty line; its fields are unfolded by
removing each line break that precedes white space. A line without a colon,
a field name outside printable US-ASCII, a control character (NUL included),
a block starting with a continuation line, or a continuation line of white
space only (obsolete syntax that some readers take for the end of the block)
is MALFORMED. Field bodies are UTF-8 (RFC 6532 allows it; ASCII is a subset).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import Rejection
from .limits import MessageLimits
from .linebreaks import check_uniform
from .reasons import Reason

# Fields that an entity may carry at most once, by lower-cased name. RFC 5322
# only constrains the message header and RFC 2045/2183 the MIME fields, but a
# second copy means the same ambiguity in any entity, so all are checked in all.
_AT_MOST_ONCE: dict[str, str] = {
    name.lower(): name
    for name in (
        "Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Message-ID",
        "In-Reply-To", "References", "Subject", "MIME-Version", "Content-Type",
        "Content-Transfer-Encoding", "Content-ID", "Content-Description",
        "Content-Disposition",
    )
}

_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FIELD_NAME = re.compile(r"[!-9;-~]+:")  # ftext: printable US-ASCII except ":"
_WSP = " \t"


@dataclass(frozen=True)
class HeaderBlock:
    fields: tuple[tuple[str, str], ...]  # (name as received, unfolded body without surrounding white space)
    _index: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, list[str]] = {}
        for name, value in self.fields:
            index.setdefault(name.lower(), []).append(value)
        object.__setattr__(self, "_index", {name: tuple(values) for name, values in index.items()})

    def get(self, name: str) -> str | None:
        """The first body of the field, or None when absent."""
        values = self._index.get(name.lower())
        return values[0] if values else None

    def get_all(self, name: str) -> tuple[str, ...]:
        return self._index.get(name.lower(), ())

    def count(self, name: str) -> int:
        return len(self._index.get(name.lower(), ()))


def read_header_block(data: bytes, start: int, end: int, limits: MessageLimits) -> tuple[HeaderBlock, int]:
    """The header block of the entity in data[start:end] and the offset where its body starts."""
    header_end, body_start = _find_end(data, start, end, limits)
    check_uniform(data, start, body_start, "header block")
    block = data[start:header_end]
    if _CONTROL.search(block):
        raise Rejection(Reason.MALFORMED, "control character in header block")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejection(Reason.MALFORMED, "header block is not UTF-8") from None
    newline = "\r\n" if "\r" in text else "\n"
    lines = text.split(newline)
    if lines[-1] == "":
        lines.pop()  # the break ending the last field
    headers = HeaderBlock(_unfold(lines))
    if len(headers.fields) > limits.max_header_count:
        raise Rejection(Reason.MALFORMED, f"more than {limits.max_header_count} header fields (max_header_count)")
    _check_at_most_once(headers)
    return headers, body_start


def _find_end(data: bytes, start: int, end: int, limits: MessageLimits) -> tuple[int, int]:
    """(end of the last field line, start of the body); no empty line means no body."""
    if data.startswith(b"\r\n", start, end):
        return start, start + 2
    if data.startswith(b"\n", start, end):
        return start, start + 1
    window = min(end, start + limits.max_header_bytes)
    # Look for the CRLF form first, then for the LF form only before it, so
    # that finding the end of a header block costs the size of the block.
    lf_crlf = data.find(b"\n\r\n", start, window)
    lf_lf = data.find(b"\n\n", start, lf_crlf + 2 if lf_crlf >= 0 else window)
    if lf_lf >= 0:
        return lf_lf + 1, lf_lf + 2
    if lf_crlf >= 0:
        return lf_crlf + 1, lf_crlf + 3
    if window < end:
        raise Rejection(Reason.MALFORMED, f"header block larger than {limits.max_header_bytes} bytes (max_header_bytes)")
    return end, end


def _unfold(lines: list[str]) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    name: str | None = None
    parts: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and line:
            if name is None:
                raise Rejection(Reason.MALFORMED, "header block starts with a continuation line")
            if not line.strip(_WSP):
                raise Rejection(Reason.MALFORMED, "continuation line of white space only in header block")
            parts.append(line)
            continue
        if name is not None:
            fields.append((name, "".join(parts).strip(_WSP)))
        match = _FIELD_NAME.match(line)
        if match is None:
            detail = "invalid character in a field name" if ":" in line else "header line without a colon"
            raise Rejection(Reason.MALFORMED, detail)
        name, parts = match.group()[:-1], [line[match.end():]]
    if name is not None:
        fields.append((name, "".join(parts).strip(_WSP)))
    return tuple(fields)


def _check_at_most_once(headers: HeaderBlock) -> None:
    for key, values in headers._index.items():
        if len(values) > 1 and key in _AT_MOST_ONCE:
            raise Rejection(Reason.MALFORMED, f"duplicate {_AT_MOST_ONCE[key]} field")
