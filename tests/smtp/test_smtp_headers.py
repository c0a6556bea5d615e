"""decide.read_headers against the stdlib's reading (compat32 parser and getaddresses) it replaces."""

from __future__ import annotations

import email.utils
import re
from email import policy as email_policy
from email.parser import BytesHeaderParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.smtp import decide


def stdlib_read_headers(data: bytes) -> decide.Headers:
    message = BytesHeaderParser(policy=email_policy.compat32).parsebytes(decide.header_block(data))

    def addresses(*names: str) -> tuple[str, ...]:
        values = [str(v) for name in names for v in message.get_all(name, [])]
        return tuple(addr for _, addr in email.utils.getaddresses(values) if addr)

    message_id = message.get("Message-ID")
    return decide.Headers(
        from_=addresses("From"),
        sender=addresses("Sender"),
        recipients=addresses("To", "Cc"),
        received_count=len(message.get_all("Received", [])),
        message_id=re.sub(r"[^!-~]", "?", str(message_id).strip())[:200] if message_id else None,
    )


_ATOMS = st.sampled_from(["alice", "bob", "a.b", "x+y", "o'neil", "é", "Dr", "Jean", "=?utf-8?q?J=C3=A9?=", "1", "{}", "~"])
_DOMAINS = st.sampled_from(["hospital.test", "peer.test", "a.b.c", "[127.0.0.1]", "x", "", "b..c", ".d"])
_PIECES = st.sampled_from(
    [" ", "\t", "\r\n ", "\r\n\t", ",", ", ", ";", ":", "<", ">", "@", ".", "..", '"', '"a b"', "\\", "(", ")", "(c)", "[", "]",
     "\xff", "\x00", "undisclosed-recipients:;", "group: a@b, c@d;"]
)
_ADDR = st.builds(lambda local, domain: f"{local}@{domain}", _ATOMS, _DOMAINS)
_MAILBOX = st.one_of(
    _ADDR,
    st.builds(lambda a: f"<{a}>", _ADDR),
    st.builds(lambda words, a: f"{' '.join(words)} <{a}>", st.lists(_ATOMS, min_size=1, max_size=3), _ADDR),
    st.builds(lambda a: f'"Dupont, Jean" <{a}>', _ADDR),
    st.builds(lambda a: f"{a} (comment)", _ADDR),
)
_VALUE = st.lists(st.one_of(_MAILBOX, _ATOMS, _PIECES), max_size=6).map("".join)
_NAMES = st.sampled_from(
    ["From", "from", "FROM", "Sender", "To", "to", "Cc", "CC", "Bcc", "Received", "Message-ID", "Message-Id", "Subject", "X-A",
     "From ", "From", "", "To ", " To", "\tCc", "Bad Name", "X\xe9"]
)
_LINE = st.one_of(
    st.builds(lambda name, value: f"{name}:{value}", _NAMES, _VALUE),
    st.builds(lambda name, value: f"{name}: {value}", _NAMES, _VALUE),
    st.builds(lambda value: f" {value}", _VALUE),
    st.builds(lambda value: f"\t{value}", _VALUE),
    st.builds(lambda value: f"From {value}", _VALUE),
    _VALUE,
)


def _data(lines: list[str], body: bool) -> bytes:
    text = "\r\n".join(lines) + ("\r\n\r\nbody\r\nTo: eve@x\r\n" if body else "")
    return text.encode("utf-8", "surrogateescape").replace(b"\r\n\r\n\r\n", b"\r\n\r\n")


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, max_size=8), st.booleans())
def test_read_headers_reads_as_the_stdlib_does(lines, body):
    data = _data(lines, body)
    assert decide.read_headers(data) == stdlib_read_headers(data)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_VALUE, min_size=1, max_size=3))
def test_addresses_of_a_field_are_getaddresses(values):
    data = "".join(f"To: {v}\r\n" for v in values).encode("utf-8", "surrogateescape") + b"\r\n"
    assert decide.read_headers(data).recipients == stdlib_read_headers(data).recipients


def test_stdlib_quirks_are_kept():
    data = (
        b"From alice Thu Jan  1 00:00:00 2026\r\n"  # an mbox From line
        b" folded onto nothing\r\n"
        b"To: bob@hospital.test,\r\n carol@peer.test\r\n"
        b"Cc: \xc3\xa9 <dan@peer.test>\r\n"
        b": no name\r\n"
        b" still nothing\r\n"
        b"Message-ID:\r\n <m1@x>\r\n"
        b"Not a field\r\n"
        b"Sender: eve@peer.test\r\n\r\n"
    )
    headers = decide.read_headers(data)
    assert headers == stdlib_read_headers(data)
    assert headers.recipients == ("bob@hospital.test", "carol@peer.test", "dan@peer.test")
    assert headers.message_id == "<m1@x>" and headers.sender == () and headers.from_ == ()
