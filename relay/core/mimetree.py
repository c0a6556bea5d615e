"""The MIME entity tree (RFC 2045, RFC 2046), read strictly over bytes.

Entities are offsets into one buffer, so a part's exact bytes are always a
slice of what was received. The walk is iterative and every step is a
C-level search, so depth, part count and size limits end the work with a
MALFORMED rejection instead of a recursion error or a long scan.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Iterator

from .errors import Rejection
from .headers import HeaderBlock, read_header_block
from .limits import MessageLimits
from .linebreaks import break_before, check_uniform
from .reasons import Reason
from .tokens import MIME, MIME_TOKEN, QUOTED_TEXT, Kind, Token, lex, unquote

_TEXT_PLAIN_DEFAULT = "text/plain"  # RFC 2045 §5.2
_DIGEST_DEFAULT = "message/rfc822"  # RFC 2046 §5.1.5
_ENCODINGS = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64"})
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})  # the only ones a composite may have (RFC 2045 §6.4)
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]\Z")
_PADDING = re.compile(rb"[ \t]*(\r?\n|\Z)")  # transport padding, then the line break (or the end)

_PARAMETER_SYNTAX = rf'[ \t]*;[ \t]*({MIME_TOKEN})[ \t]*=[ \t]*(?:({MIME_TOKEN})|"({QUOTED_TEXT})")'
_PARAMETER = re.compile(_PARAMETER_SYNTAX)
_PLAIN_CONTENT_TYPE = re.compile(rf"[ \t]*({MIME_TOKEN})[ \t]*/[ \t]*({MIME_TOKEN})((?:{_PARAMETER_SYNTAX})*)[ \t]*\Z")

_SLASH: Token = (Kind.SPECIAL, "/")
_SEMICOLON: Token = (Kind.SPECIAL, ";")
_EQUALS: Token = (Kind.SPECIAL, "=")


@dataclass(frozen=True, slots=True)
class ContentType:
    mime_type: str  # "type/subtype", lower-cased
    params: tuple[tuple[str, str], ...] = ()  # (lower-cased attribute, value as written)

    def param(self, name: str) -> str | None:
        for attribute, value in self.params:
            if attribute == name:
                return value
        return None

    @property
    def is_multipart(self) -> bool:
        return self.mime_type.startswith("multipart/")

    @property
    def is_composite(self) -> bool:
        """Whether the body is made of entities (RFC 2046 §5)."""
        return self.is_multipart or self.mime_type == "message/rfc822"


def parse_content_type(value: str) -> ContentType:
    """type "/" subtype *(";" attribute "=" value), comments allowed, nothing else.

    Almost every Content-Type is written without comments; one regular
    expression of that same grammar reads those, and only the rest goes
    through the lexer, which knows comments and names what is wrong.
    """
    plain = _PLAIN_CONTENT_TYPE.match(value)
    if plain is None:
        mime_type, params = read_tokens(lex(value, MIME))
    else:
        mime_type = f"{plain.group(1)}/{plain.group(2)}"
        # A token is never empty, so an empty token group means the quoted form matched.
        params = [(name, token or unquote(quoted)) for name, token, quoted in _PARAMETER.findall(plain.group(3))]
    return content_type_of(mime_type, params)


def content_type_of(mime_type: str, params: list[tuple[str, str]]) -> ContentType:
    mime_type = mime_type.lower()
    attributes = [name.lower() for name, _ in params]
    if len(set(attributes)) != len(attributes):
        raise Rejection(Reason.MALFORMED, f"a parameter is repeated in Content-Type {mime_type}")
    return ContentType(mime_type, tuple(zip(attributes, (text for _, text in params))))


def read_tokens(tokens: list[Token]) -> tuple[str, list[tuple[str, str]]]:
    """(type/subtype, parameters) from the lexer's tokens: the reading that also knows comments."""
    if len(tokens) < 3 or tokens[0][0] is not Kind.WORD or tokens[1] != _SLASH or tokens[2][0] is not Kind.WORD:
        raise Rejection(Reason.MALFORMED, "Content-Type is not type/subtype")
    mime_type = f"{tokens[0][1]}/{tokens[2][1]}"
    params: list[tuple[str, str]] = []
    for at in range(3, len(tokens), 4):
        semicolon, name, equals, value = (tokens[at : at + 4] + [(Kind.SPECIAL, "")] * 3)[:4]
        if semicolon != _SEMICOLON or name[0] is not Kind.WORD or equals != _EQUALS:
            raise Rejection(Reason.MALFORMED, f"invalid parameter in Content-Type {mime_type.lower()}")
        if value[0] not in (Kind.WORD, Kind.QUOTED):
            raise Rejection(Reason.MALFORMED, f"invalid parameter value in Content-Type {mime_type.lower()}")
        params.append((name[1], value[1]))
    return mime_type, params


def parse_transfer_encoding(value: str) -> str:
    encoding = value.lower()
    if encoding in _ENCODINGS:  # the usual spelling, without comments or odd spacing
        return encoding
    tokens = lex(value, MIME)
    if len(tokens) != 1 or tokens[0][0] is not Kind.WORD or tokens[0][1].lower() not in _ENCODINGS:
        raise Rejection(Reason.MALFORMED, "unknown or invalid Content-Transfer-Encoding")
    return tokens[0][1].lower()


@dataclass(frozen=True, slots=True)
class Entity:
    headers: HeaderBlock
    content_type: ContentType
    encoding: str  # lower-cased Content-Transfer-Encoding, "7bit" by default
    start: int  # first byte of the header block
    body_start: int
    end: int  # one past the last byte of the body
    depth: int  # composite entities enclosing this one (the root has 0)


def read_entity(data: bytes, start: int, end: int, depth: int, limits: MessageLimits, default_type: str = _TEXT_PLAIN_DEFAULT) -> Entity:
    """One entity's header block, content type and encoding, with the checks that need no descent.

    The body's own line breaks are checked by check_body_line_breaks, only
    when the message mixes conventions at all.
    """
    if depth > limits.max_mime_depth:
        raise Rejection(Reason.MALFORMED, f"MIME nesting deeper than {limits.max_mime_depth} (max_mime_depth)")
    headers, body_start = read_header_block(data, start, end, limits)
    declared = headers.get("Content-Type")
    content_type = parse_content_type(declared) if declared is not None else ContentType(default_type)
    declared = headers.get("Content-Transfer-Encoding")
    encoding = parse_transfer_encoding(declared) if declared is not None else "7bit"
    if content_type.is_composite and encoding not in _IDENTITY_ENCODINGS:
        raise Rejection(Reason.MALFORMED, f"{content_type.mime_type} with Content-Transfer-Encoding {encoding}")
    return Entity(headers, content_type, encoding, start, body_start, end, depth)


def check_body_line_breaks(data: bytes, entities: list[Entity]) -> None:
    """One convention inside each leaf body but base64 ones (see linebreaks); needed only in a mixed message."""
    for entity in entities:
        if not entity.content_type.is_composite and entity.encoding != "base64":
            check_uniform(data, entity.body_start, entity.end, "body")


def base64_body(data: bytes, entity: Entity, what: str) -> bytes:
    """The decoded body of a base64 entity; what names it in the refusals."""
    if entity.encoding != "base64":
        raise Rejection(Reason.MALFORMED, f"{what} is not base64 (Content-Transfer-Encoding {entity.encoding})")
    # Line breaks are the only non-alphabet bytes allowed; strict mode refuses
    # anything else, bad padding and data after the padding.
    compact = data[entity.body_start : entity.end].translate(None, b"\r\n")
    try:
        decoded = binascii.a2b_base64(compact, strict_mode=True)
    except binascii.Error:
        raise Rejection(Reason.MALFORMED, f"invalid base64 in {what}") from None
    if not decoded:
        raise Rejection(Reason.MALFORMED, f"empty {what}")
    return decoded


def boundary_of(entity: Entity) -> bytes:
    boundary = entity.content_type.param("boundary")
    if boundary is None:
        raise Rejection(Reason.MALFORMED, f"{entity.content_type.mime_type} without a boundary")
    encoded = boundary.encode("utf-8")  # a non-ASCII byte then fails the bchars match
    if not _BOUNDARY.match(encoded):
        raise Rejection(Reason.MALFORMED, "invalid multipart boundary")
    return encoded


def split_multipart(data: bytes, entity: Entity, limits: MessageLimits, parts_before: int = 0) -> list[tuple[int, int]]:
    """The (start, end) of each body part, exact bytes: the CRLF before a delimiter belongs to it (RFC 2046 §5.1.1).

    parts_before counts the parts already met elsewhere in the tree, against max_parts.
    """
    room = limits.max_parts - parts_before
    dash_boundary = b"--" + boundary_of(entity)
    start, end = entity.body_start, entity.end
    parts: list[tuple[int, int]] = []
    breaks: set[bytes] = set()
    opened = -1  # where the current part starts; -1 while in the preamble
    for delimiter in _delimiters(data, start, end, dash_boundary):
        breaks |= delimiter.breaks
        if opened < 0:
            check_uniform(data, start, delimiter.before, "preamble")
        elif delimiter.before < opened:
            # "--b CRLF --b": one CRLF cannot end a delimiter line and begin the next one.
            raise Rejection(Reason.MALFORMED, "multipart delimiter lines without a body part between them")
        else:
            parts.append((opened, delimiter.before))
            if len(parts) > room:
                raise Rejection(Reason.MALFORMED, f"more than {limits.max_parts} MIME parts (max_parts)")
        if delimiter.closing:
            _check_epilogue(data, delimiter.after, end, dash_boundary)
            break
        opened = delimiter.after
    else:
        raise Rejection(Reason.MALFORMED, f"{entity.content_type.mime_type} without its close delimiter")
    if len(breaks) > 1:
        raise Rejection(Reason.MALFORMED, "multipart delimiter lines mix CRLF and bare LF line breaks")
    if not parts:
        raise Rejection(Reason.MALFORMED, f"{entity.content_type.mime_type} without any body part")
    return parts


@dataclass(frozen=True, slots=True)
class _Delimiter:
    before: int  # end of the text before it: the line break ahead of "--boundary" is the delimiter's
    after: int  # start of the text after its line
    closing: bool
    breaks: frozenset[bytes]  # the line breaks around it, to check that they agree


def _delimiters(data: bytes, start: int, end: int, dash_boundary: bytes) -> Iterator[_Delimiter]:
    for line in _boundary_lines(data, start, end, dash_boundary):
        after = line + len(dash_boundary)
        closing = data.startswith(b"--", after, end)
        padding = _PADDING.match(data, after + 2 if closing else after, end)
        if padding is None:
            raise Rejection(Reason.MALFORMED, "a line starts with the multipart boundary but is not a delimiter")
        line_break = padding.group(1)
        if not line_break and not closing:
            raise Rejection(Reason.MALFORMED, "multipart delimiter at the end of the body")
        breaks = {line_break} if line_break else set()
        before = start
        if line > start:
            ahead = break_before(data, line)
            breaks.add(ahead)
            before = line - len(ahead)
        yield _Delimiter(before, padding.end(), closing, frozenset(breaks))


def _boundary_lines(data: bytes, start: int, end: int, dash_boundary: bytes) -> Iterator[int]:
    """Offsets of the lines that begin with --boundary, in order."""
    if data.startswith(dash_boundary, start, end):
        yield start
    needle = b"\n" + dash_boundary
    found = data.find(needle, start, end)
    while found >= 0:
        yield found + 1
        found = data.find(needle, found + 1, end)


def _check_epilogue(data: bytes, start: int, end: int, dash_boundary: bytes) -> None:
    # start follows the close delimiter's line break, so search from that LF.
    if data.find(b"\n" + dash_boundary, start - 1, end) >= 0:
        raise Rejection(Reason.MALFORMED, "multipart boundary after the close delimiter")
    check_uniform(data, start, end, "epilogue")


def walk(data: bytes, root: Entity, limits: MessageLimits) -> Iterator[Entity]:
    """Every entity under root (root included), depth first, within the limits."""
    stack = [root]
    parts = 0
    while stack:
        entity = stack.pop()
        yield entity
        if entity.content_type.is_multipart:
            regions = split_multipart(data, entity, limits, parts)
            parts += len(regions)
            default = _DIGEST_DEFAULT if entity.content_type.mime_type == "multipart/digest" else _TEXT_PLAIN_DEFAULT
            children = [read_entity(data, s, e, entity.depth + 1, limits, default) for s, e in regions]
            stack.extend(reversed(children))
        elif entity.content_type.is_composite:
            stack.append(read_entity(data, entity.body_start, entity.end, entity.depth + 1, limits))
