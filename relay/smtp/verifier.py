"""Judging messages off the event loop: worker processes that load the snapshot themselves.

CPU-bound work (line-ending and header scans, strict MIME reading, S/MIME
verification) would stall every other session if run on the loop.
Each task names the snapshot version it must be judged against; a worker
whose copy is older loads the current one before judging. The limits are
fixed for the service's life (a changed [limits] needs a restart): each
worker gets them once, at start, not with every message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..core.limits import MessageLimits
from ..core.snapshot import Snapshot
from .decide import Judgement, Transaction, judge
from .snapshots import SnapshotLoader
from .workers import WorkerPool


# A judgement takes milliseconds, a 50 MB message well under a second: a worker
# holding one for a minute is stuck, and is replaced (its messages get 451).
JUDGE_TIMEOUT = 60.0


class Verifier:
    """`workers` processes (relay.smtp.workers), or two threads of this process when 0."""

    def __init__(self, loader: SnapshotLoader, workers: int, limits: MessageLimits, max_received: int) -> None:
        self.limits, self.max_received = limits, max_received
        factory = functools.partial(_Judging, loader, limits, max_received)
        self._pool = WorkerPool(factory, workers, task_timeout=JUDGE_TIMEOUT) if workers > 0 else None
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") if workers == 0 else None

    async def judge(self, raw: bytes, tx: Transaction, snapshot: Snapshot, now: dt.datetime) -> Judgement:
        """The judgement; WorkerLost (a temporary failure) when the worker holding the message dies."""
        if self._pool is not None:
            return await self._pool.submit((tx, snapshot.version, now), raw)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, judge, raw, tx, snapshot, now, self.limits, self.max_received)

    @property
    def worker_pids(self) -> list[int]:
        return self._pool.pids if self._pool is not None else []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Judging:
    """A worker's side: its own snapshot, loaded on first use so that a load error reaches the caller."""

    loader: SnapshotLoader
    limits: MessageLimits
    max_received: int
    snapshot: Snapshot | None = None

    def __call__(self, header: tuple[Transaction, str, dt.datetime], raw: bytes) -> Judgement:
        tx, version, now = header
        if self.snapshot is None or self.snapshot.version != version:
            self.snapshot = self.loader()
        return judge(raw, tx, self.snapshot, now, self.limits, self.max_received)

