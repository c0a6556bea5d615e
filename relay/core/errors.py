"""Refusals raised inside the core and turned into verdicts at its boundary."""

from __future__ import annotations

from .reasons import Reason


class Rejection(Exception):
    """A verification step refused the message for a stable reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
