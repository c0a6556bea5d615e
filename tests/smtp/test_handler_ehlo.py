"""The EHLO hook: AUTH offered only on submission listeners, and the reply handed to aiosmtpd as
one element, which aiosmtpd writes in one push (one send, one TLS record)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from relay.smtp.config import ListenerKind
from relay.smtp.handler import RelayHandler

OFFERED = ["250-relay.test", "250-SIZE 52428800", "250-AUTH LOGIN PLAIN", "250-STARTTLS", "250 HELP"]


def _ehlo(kind: ListenerKind) -> tuple[list[str], SimpleNamespace]:
    handler = RelayHandler.__new__(RelayHandler)
    handler.listener = SimpleNamespace(kind=kind)  # type: ignore[assignment]
    session = SimpleNamespace(host_name=None)
    return asyncio.run(handler.handle_EHLO(None, session, None, "client.test", list(OFFERED))), session  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kind, expected",
    [
        (ListenerKind.SUBMISSION, OFFERED),
        (ListenerKind.MX, [line for line in OFFERED if "AUTH" not in line]),
        (ListenerKind.LOOPBACK, [line for line in OFFERED if "AUTH" not in line]),
    ],
)
def test_the_reply_is_one_element_and_offers_auth_only_for_submission(kind: ListenerKind, expected: list[str]) -> None:
    reply, session = _ehlo(kind)
    assert reply == ["\r\n".join(expected)]
    assert session.host_name == "client.test"
