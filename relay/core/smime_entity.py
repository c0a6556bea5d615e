"""The raw MIME around S/MIME content: a message split into its RFC 5322 fields and its content entity.

Header fields stay raw bytes with their folding (no CRLF at the end), so what
the builders write back is what they were given. Shared by signing,
encryption and the rebuilding of a decrypted message.
"""

from __future__ import annotations

import base64
import re
from email import quoprimime
from typing import Sequence

from .errors import Rejection
from .limits import MessageLimits
from .reasons import Reason

_CRLF = b"\r\n"
_DEFAULT_CONTENT_TYPE = b"Content-Type: text/plain; charset=us-ascii"


def canonical(raw: bytes) -> bytes:
    """Every line ending as CRLF (RFC 8551 §3.1.1 canonical form)."""
    return re.sub(rb"\r\n|\r|\n", _CRLF, raw)


_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")


def split_message(raw: bytes, limits: MessageLimits) -> tuple[list[bytes], list[bytes], bytes]:
    """(outer header fields, content header fields, body); fields keep their folding, no CRLF."""
    head, sep, body = raw.partition(_CRLF + _CRLF)
    if not sep and head.endswith(_CRLF):
        head = head[:-2]
    if not head or head.startswith((b" ", b"\t", _CRLF)):
        raise Rejection(Reason.MALFORMED, "the message has no header block")
    if len(head) > limits.max_header_bytes:
        raise Rejection(Reason.MALFORMED, "header block too large")
    fields = header_fields(head, limits)
    outer = [f for f in fields if not is_content_field(f) and field_name(f) != b"mime-version"]
    return outer, [f for f in fields if is_content_field(f)], body


def header_fields(head: bytes, limits: MessageLimits) -> list[bytes]:
    fields: list[bytes] = []
    for line in head.split(_CRLF):
        if len(line) + 2 > limits.max_line_bytes:
            raise Rejection(Reason.MALFORMED, "header line too long")
        if line[:1] in (b" ", b"\t"):
            fields[-1] += _CRLF + line  # folded continuation
            continue
        name, colon, _ = line.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise Rejection(Reason.MALFORMED, "a header line is not a field")
        fields.append(line)
    if len(fields) > limits.max_header_count:
        raise Rejection(Reason.MALFORMED, "too many header fields")
    return fields


def field_name(field: bytes) -> bytes:
    return field.partition(b":")[0].strip().lower()


def is_content_field(field: bytes) -> bool:
    return field_name(field).startswith(b"content-")


def content_entity(content_fields: list[bytes], body: bytes) -> bytes:
    """The MIME entity of a message's content: its content header fields moved inside, the body
    quoted-printable encoded where transports could alter it (the first part of
    multipart/signed, or the content of an envelope)."""
    fields = content_fields or [_DEFAULT_CONTENT_TYPE]
    if _needs_transfer_encoding(fields, body):
        fields = [f for f in fields if field_name(f) != b"content-transfer-encoding"]
        fields.append(b"Content-Transfer-Encoding: quoted-printable")
        body = quoprimime.body_encode(body.decode("latin-1"), eol="\r\n").encode("ascii")
    return _CRLF.join(fields) + _CRLF + _CRLF + body


def _needs_transfer_encoding(fields: list[bytes], body: bytes) -> bool:
    """8-bit bytes or overlong lines in a single-part body: mail transports could alter them
    and break the signature (RFC 8551 §3.1.2), so they are quoted-printable encoded."""
    values = {field_name(f): f.partition(b":")[2].strip().lower() for f in fields}
    if values.get(b"content-type", b"").startswith(b"multipart/"):
        return False
    if values.get(b"content-transfer-encoding", b"7bit") not in (b"7bit", b"8bit", b"binary"):
        return False
    return not body.isascii() or any(len(line) > 998 for line in body.split(_CRLF))


def base64_lines(data: bytes, width: int = 76) -> Sequence[bytes]:
    encoded = base64.b64encode(data)
    return [encoded[i:i + width] for i in range(0, len(encoded), width)]
