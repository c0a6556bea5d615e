"""Closed time intervals: how long a validation result keeps holding."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_EARLIEST = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
_LATEST = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
# Certificates and CRLs carry whole seconds; one microsecond turns a strict
# bound ("before thisUpdate") into a closed one without touching real instants.
TICK = dt.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    start: dt.datetime = _EARLIEST
    end: dt.datetime = _LATEST

    def __contains__(self, when: dt.datetime) -> bool:
        return self.start <= when <= self.end

    def __and__(self, other: TimeWindow) -> TimeWindow:
        return TimeWindow(max(self.start, other.start), min(self.end, other.end))

    @property
    def empty(self) -> bool:
        return self.start > self.end

    def clamp(self, when: dt.datetime) -> dt.datetime:
        """The instant of the window nearest to `when` (the window must not be empty)."""
        return min(max(when, self.start), self.end)

    @classmethod
    def until(cls, end: dt.datetime) -> TimeWindow:
        return cls(end=end)

    @classmethod
    def since(cls, start: dt.datetime) -> TimeWindow:
        return cls(start=start)


ALWAYS = TimeWindow()


def as_utc(when: dt.datetime) -> dt.datetime:
    """Naive times are taken as UTC (certificate times are UTC)."""
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)


def naive_utc(when: dt.datetime) -> dt.datetime:
    """The UTC time without its zone, as cryptography's server and client verifiers take it."""
    return as_utc(when).replace(tzinfo=None)
