"""A timeout whose end moves often and is seldom reached, on one loop timer.

A command timeout restarted after every command, or a reply timeout set for
every exchange, would otherwise cost a new timer and a cancelled one each
time: a heap push, and an entry left on the loop's heap until it is swept.
Here the end only moves; the timer is rescheduled when it would fire too
late, and when it fires before the end it waits again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

# The loop runs a timer up to a clock tick early: this short of the end is
# the end (else a coarse clock would have the timer rescheduled at once, again and again).
_SLACK = max(0.001, time.get_clock_info("monotonic").resolution)


class Deadline:
    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[], None]) -> None:
        self._loop = loop
        self._expired = expired
        self._end: float | None = None  # loop time; None: no end
        self._timer: asyncio.TimerHandle | None = None

    @property
    def end(self) -> float | None:
        return self._end

    def set(self, seconds: float) -> None:
        """The end is `seconds` from now."""
        self.set_at(self._loop.time() + seconds)

    def set_at(self, end: float) -> None:
        """The end is at loop time `end`; `expired` is called once it comes, unless moved or cleared."""
        self._end = end
        if self._timer is None or self._timer.when() > end:
            self._schedule(end)

    def clear(self) -> None:
        """No end for now; the timer, if any, stays for the next end (it does nothing when it fires)."""
        self._end = None

    def cancel(self) -> None:
        """No end and no timer: nothing of this deadline stays on the loop."""
        self._end = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._due)

    def _due(self) -> None:
        self._timer = None
        if self._end is None:
            return
        if self._end - self._loop.time() > _SLACK:
            self._schedule(self._end)
            return
        self._end = None
        self._expired()
