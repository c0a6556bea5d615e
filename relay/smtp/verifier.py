"""Verification off the event loop: a process pool whose workers load the snapshot themselves.

CPU-bound S/MIME work would stall every other session if run on the loop.
Each task names the snapshot version it must be judged against; a worker
whose copy is older loads the current one before judging.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from ..core.limits import MessageLimits
from ..core.snapshot import Snapshot
from ..core.verdict import Verdict
from ..core.verify import verify_message
from .snapshots import SnapshotLoader


class Verifier:
    def __init__(self, loader: SnapshotLoader, workers: int) -> None:
        self._processes = workers > 0
        self._executor: Executor
        if self._processes:
            self._executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a running event loop
                initializer=_init_worker,
                initargs=(loader,),
            )
        else:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")

    async def verify(self, raw: bytes, snapshot: Snapshot, now: dt.datetime, limits: MessageLimits) -> Verdict:
        loop = asyncio.get_running_loop()
        if self._processes:
            return await loop.run_in_executor(self._executor, _verify_in_worker, raw, snapshot.version, now, limits)
        return await loop.run_in_executor(self._executor, verify_message, raw, snapshot, now, limits)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_worker: dict[str, object] = {}


def _init_worker(loader: SnapshotLoader) -> None:
    _worker["loader"] = loader
    _worker["snapshot"] = None  # loaded on first use, so a load error reaches the caller as an error


def _verify_in_worker(raw: bytes, version: str, now: dt.datetime, limits: MessageLimits) -> Verdict:
    snapshot = _worker["snapshot"]
    if not isinstance(snapshot, Snapshot) or snapshot.version != version:
        loader = _worker["loader"]
        snapshot = loader()  # type: ignore[operator]
        _worker["snapshot"] = snapshot
    return verify_message(raw, snapshot, now, limits)
