"""Big and hostile messages end with a value or a Rejection, never anything else.

How long they take is measured by bench/hostile_input.py, not here.
"""

from __future__ import annotations

import base64

import pytest

from relay.core.errors import Rejection
from relay.core.limits import DEFAULT_LIMITS
from relay.core.mime import Mailbox, check_signed_content, locate_signature
from relay.core.reasons import Reason

SENDER = Mailbox("jean.dupont", "hopital.mssante.fr")


def b64_lines(size: int) -> bytes:
    text = base64.b64encode(bytes(range(256)) * (size // 256 + 1))[: size * 4 // 3]
    text = text[: len(text) - len(text) % 4]
    return b"".join(text[i : i + 76] + b"\r\n" for i in range(0, len(text), 76))


def signed_message(attachment: int) -> bytes:
    content = (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + b"Compte rendu de consultation.\r\n" * 20 +
        b'--m\r\nContent-Type: application/pdf; name="cr.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + b64_lines(attachment) +
        b"--m--\r\n"
    )
    return (
        b"From: Dr Jean Dupont <jean.dupont@hopital.mssante.fr>\r\nTo: dest@clinique.mssante.fr\r\nSubject: CR\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="s"\r\n\r\n'
        b"--s\r\n" + content + b"\r\n--s\r\n"
        b"Content-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64_lines(3000) + b"--s--\r\n"
    )


def deep_over_big_leaf() -> bytes:
    """A 1 MB base64 leaf under 99 levels of multipart/mixed."""
    body = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64_lines(1_000_000)
    for level in range(99):
        boundary = b"n%d" % level
        body = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--' + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n"
    return body


def read(raw: bytes) -> None:
    signed = locate_signature(raw, DEFAULT_LIMITS)
    assert signed.detached_content is not None
    check_signed_content(signed.detached_content, signed.sender, DEFAULT_LIMITS)


def refuse(raw: bytes) -> None:
    with pytest.raises(Rejection) as caught:
        check_signed_content(raw, SENDER, DEFAULT_LIMITS)
    assert caught.value.reason is Reason.MALFORMED


def test_a_2_mb_message_is_read() -> None:
    raw = signed_message(1_450_000)
    assert 1_900_000 < len(raw) < 2_100_000
    read(raw)


def test_a_20_kb_message_is_read() -> None:
    read(signed_message(12_000))


def test_deep_nesting_over_a_big_leaf_stays_bounded() -> None:
    check_signed_content(deep_over_big_leaf(), SENDER, DEFAULT_LIMITS)


def test_hostile_shapes_end_with_a_verdict() -> None:
    many_parts = b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + b"--p\r\n\r\n\r\n" * 200_000 + b"--p--\r\n"
    empty_lines = b"Content-Type: text/plain\n\n" + b"\n" * 5_000_000
    one_long_line = b"Content-Type: text/plain\r\n\r\n" + b"x" * 5_000_000
    unterminated = b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + b"--p\r\n\r\nx\r\n" * 500
    deep = b"".join(b'Content-Type: multipart/mixed; boundary="%d"\r\n\r\n--%d\r\n' % (i, i) for i in range(5000))
    refuse(many_parts)
    check_signed_content(empty_lines, SENDER, DEFAULT_LIMITS)
    refuse(one_long_line)
    refuse(unterminated)
    refuse(deep)
