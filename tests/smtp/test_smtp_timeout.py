"""The command timeout: one timer per connection, moved only when it would fire too late.

Its effect on real connections (an idle client dropped, a slow but busy one
kept until the session deadline) is tested end to end in
tests/e2e/test_e2e_limits.py.
"""

from __future__ import annotations

import asyncio

import pytest

from relay.smtp.session import RelaySMTP


@pytest.fixture
def server():
    loop = asyncio.new_event_loop()
    smtp = RelaySMTP(
        object(), metrics=None, limiter=None, credentials=None, session_timeout=60,
        line_length_limit=1001, sessions=set(), loop=loop, hostname="relay.test", timeout=300,
    )
    scheduled: list[asyncio.TimerHandle] = []
    call_at = loop.call_at

    def counting_call_at(when, callback, *args, **kwargs):
        scheduled.append(call_at(when, callback, *args, **kwargs))
        return scheduled[-1]

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    yield smtp, scheduled
    loop.close()


def test_commands_move_the_end_without_new_timers(server) -> None:
    smtp, scheduled = server
    for _ in range(50):
        smtp._reset_timeout()
    assert len(scheduled) == 1 and not scheduled[0].cancelled()
    assert smtp._idle_until >= scheduled[0].when()


def test_a_shorter_timeout_replaces_the_timer(server) -> None:
    smtp, scheduled = server
    smtp._reset_timeout()
    smtp._reset_timeout(3.0)  # as aiosmtpd does while it waits for a PROXY header
    assert len(scheduled) == 2 and scheduled[0].cancelled() and not scheduled[1].cancelled()
    assert scheduled[1].when() == pytest.approx(smtp.loop.time() + 3.0, abs=1.0)


def test_a_timer_due_before_the_end_waits_again(server, monkeypatch) -> None:
    smtp, scheduled = server
    closed = []
    monkeypatch.setattr(smtp, "_timeout_cb", lambda: closed.append(True))
    smtp._reset_timeout(3.0)
    smtp._reset_timeout()  # the end moves to 300 s; the 3 s timer stays
    scheduled[0]._run()  # as the loop runs it at 3 s
    assert closed == [] and len(scheduled) == 2 and scheduled[1].when() == pytest.approx(smtp._idle_until)
    smtp._idle_until = smtp.loop.time()  # now the end has come
    scheduled[1]._run()
    assert closed == [True]
