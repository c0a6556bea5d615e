"""Queue size and oldest message age, read from the spool directory when scraped.

Only names and file times are read, never an envelope or a message
(Spool.accepted_at).
"""

from __future__ import annotations

from ..queue.spool import Spool
from .registry import QueueState


def queue_state(spool: Spool) -> QueueState:
    oldest: float | None = None
    count = 0
    for queue_id in spool.ids():
        try:
            accepted = spool.accepted_at(queue_id)
        except FileNotFoundError:
            continue  # delivered between the listing and the stat
        count += 1
        oldest = accepted if oldest is None else min(oldest, accepted)
    return QueueState(count, oldest)
