"""The session's MAIL FROM / RCPT TO fast path and command tables give what aiosmtpd alone gives."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.smtp.session import RelaySMTP
from tests.smtp.helpers import bare_session


@pytest.fixture(scope="module")
def session() -> RelaySMTP:
    loop = asyncio.new_event_loop()
    yield bare_session(loop)
    loop.close()


@pytest.mark.parametrize(
    "arg",
    ["<alice@hospital.test>", "<alice@hospital.test> SIZE=123 BODY=8BITMIME", " <a.b@c.d>", "<>", "<a@b>x", "<a@b> (c) X",
     "<a..b@c>", '<"q"@c>', "<a@[127.0.0.1]>", "alice@hospital.test", "<a@b", "<@relay:a@b>", "<a@b> X ", ""],
)
def test_known_forms(session: RelaySMTP, arg: str) -> None:
    assert session._getaddr(arg) == SMTP._getaddr(session, arg)


def test_local_part_limit_holds_on_the_fast_path(session: RelaySMTP) -> None:
    session.local_part_limit = 3
    try:
        assert session._getaddr("<abcd@b>") == (None, None) == SMTP._getaddr(session, "<abcd@b>")
        assert session._getaddr("<abc@b>") == ("abc@b", "")
    finally:
        session.local_part_limit = 0


_pieces = st.sampled_from(["<", ">", "a", "b.c", "@", "x.y", " ", "SIZE=1", "(", ")", '"', "\\", ".", "-", "[", "]", "\t", "é"])


def full_parser(session: RelaySMTP, arg: str) -> tuple[str | None, str | None]:
    try:
        return SMTP._getaddr(session, arg)
    except (IndexError, AttributeError):  # aiosmtpd's parser fails on some junk, e.g. a lone "<"
        return None, None


@pytest.mark.parametrize("arg", ["<", "<a@", "<a@["])
def test_junk_the_stdlib_parser_fails_on_is_a_syntax_error(session: RelaySMTP, arg: str) -> None:
    assert session._getaddr(arg) == (None, None)


@settings(max_examples=500, deadline=None)
@given(st.lists(_pieces, max_size=12))
def test_same_as_aiosmtpd(session: RelaySMTP, pieces: list[str]) -> None:
    arg = "".join(pieces)
    assert session._getaddr(arg) == full_parser(session, arg)


def test_the_protocol_tables_hold_every_command_and_mechanism(session: RelaySMTP) -> None:
    everything = object.__dir__(session)
    assert sorted(session._smtp_methods) == sorted(n[5:] for n in everything if n.startswith("smtp_"))
    assert {"PLAIN", "LOGIN"} <= set(session._auth_methods)


def test_the_handler_hooks_are_all_found() -> None:
    from relay.smtp.handler import RelayHandler

    loop = asyncio.new_event_loop()
    handler = RelayHandler.__new__(RelayHandler)
    session = bare_session(loop, handler)
    loop.close()
    expected = {n[len("handle_"):] for n in object.__dir__(handler) if n.startswith("handle_")}
    assert set(session._handle_hooks) == expected and {"DATA", "MAIL", "RCPT", "EHLO"} <= expected
