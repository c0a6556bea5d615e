"""Deadlines on one loop timer, and the command timeout built on one.

The command timeout's effect on real connections (an idle client dropped,
a slow but busy one kept until the session deadline) is tested end to end
in tests/e2e/test_e2e_limits.py.
"""

from __future__ import annotations

import asyncio

import pytest

from relay.smtp.deadline import Deadline
from tests.smtp.helpers import bare_session


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    scheduled: list[asyncio.TimerHandle] = []
    call_at = loop.call_at

    def counting_call_at(when, callback, *args, **kwargs):
        scheduled.append(call_at(when, callback, *args, **kwargs))
        return scheduled[-1]

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    loop.scheduled = scheduled  # type: ignore[attr-defined]
    yield loop
    loop.close()


def test_moving_the_end_later_keeps_the_one_timer(loop) -> None:
    expired: list[bool] = []
    deadline = Deadline(loop, lambda: expired.append(True))
    for _ in range(50):
        deadline.set(300)
    assert len(loop.scheduled) == 1 and not loop.scheduled[0].cancelled()
    assert deadline.end is not None and deadline.end >= loop.scheduled[0].when()


def test_an_earlier_end_replaces_the_timer(loop) -> None:
    deadline = Deadline(loop, lambda: None)
    deadline.set(300)
    deadline.set(3)
    assert len(loop.scheduled) == 2 and loop.scheduled[0].cancelled() and not loop.scheduled[1].cancelled()
    assert loop.scheduled[1].when() == pytest.approx(loop.time() + 3, abs=1)


def test_a_timer_due_before_the_end_waits_again_then_expires_once(loop) -> None:
    now = [1000.0]
    loop.time = lambda: now[0]  # type: ignore[method-assign]
    expired: list[bool] = []
    deadline = Deadline(loop, lambda: expired.append(True))
    deadline.set(3)
    deadline.set(300)  # the end moves to 1300; the timer for 1003 stays
    now[0] = 1003.0
    loop.scheduled[0]._run()  # as the loop runs it
    assert expired == [] and len(loop.scheduled) == 2 and loop.scheduled[1].when() == 1300.0
    now[0] = 1300.0
    loop.scheduled[1]._run()
    assert expired == [True] and deadline.end is None and len(loop.scheduled) == 2


def test_a_cleared_deadline_does_nothing_when_its_timer_fires(loop) -> None:
    expired: list[bool] = []
    deadline = Deadline(loop, lambda: expired.append(True))
    deadline.set(0)
    deadline.clear()
    loop.scheduled[0]._run()
    assert expired == []
    deadline.set(5)  # the fired timer is gone: a new one is scheduled
    assert len(loop.scheduled) == 2 and not loop.scheduled[1].cancelled()


def test_a_cancelled_deadline_leaves_nothing_on_the_loop(loop) -> None:
    deadline = Deadline(loop, lambda: None)
    deadline.set(5)
    deadline.cancel()
    assert loop.scheduled[0].cancelled() and deadline.end is None


def test_commands_restart_the_command_timeout_without_new_timers(loop) -> None:
    smtp = bare_session(loop, session_timeout=60, timeout=300)
    for _ in range(20):
        smtp._reset_timeout()  # what aiosmtpd calls after each command
    assert len(loop.scheduled) == 1
    smtp._timeout_handle.cancel()  # what aiosmtpd calls when the connection is lost
    assert loop.scheduled[0].cancelled()
