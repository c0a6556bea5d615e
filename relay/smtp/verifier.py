"""Judging messages off the event loop: a process pool whose workers load the snapshot themselves.

CPU-bound work (line-ending and header scans, strict MIME reading, S/MIME
verification) would stall every other session if run on the loop.
Each task names the snapshot version it must be judged against; a worker
whose copy is older loads the current one before judging.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..core.limits import MessageLimits
from ..core.snapshot import Snapshot
from .decide import Judgement, Transaction, judge
from .snapshots import SnapshotLoader


class Verifier:
    def __init__(self, loader: SnapshotLoader, workers: int) -> None:
        self._loader, self._workers = loader, workers
        self._processes = workers > 0
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if not self._processes:
            return ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a running event loop
            initializer=_init_worker,
            initargs=(self._loader,),
        )

    async def judge(
        self, raw: bytes, tx: Transaction, snapshot: Snapshot, now: dt.datetime, limits: MessageLimits, max_received: int
    ) -> Judgement:
        loop = asyncio.get_running_loop()
        if self._processes:
            executor = self._executor
            try:
                return await loop.run_in_executor(
                    executor, _judge_in_worker, raw, tx, snapshot.version, now, limits, max_received
                )
            except BrokenProcessPool:
                # A worker died (killed, out of memory): this message fails
                # temporarily, the next ones get a fresh pool.
                if executor is self._executor:
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
                raise
        return await loop.run_in_executor(self._executor, judge, raw, tx, snapshot, now, limits, max_received)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_worker: dict[str, object] = {}


def _init_worker(loader: SnapshotLoader) -> None:
    _worker["loader"] = loader
    _worker["snapshot"] = None  # loaded on first use, so a load error reaches the caller as an error


def _judge_in_worker(
    raw: bytes, tx: Transaction, version: str, now: dt.datetime, limits: MessageLimits, max_received: int
) -> Judgement:
    snapshot = _worker["snapshot"]
    if not isinstance(snapshot, Snapshot) or snapshot.version != version:
        loader = _worker["loader"]
        snapshot = loader()  # type: ignore[operator]
        _worker["snapshot"] = snapshot
    return judge(raw, tx, snapshot, now, limits, max_received)
