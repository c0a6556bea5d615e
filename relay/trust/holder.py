"""The current snapshot, and reload: build a new one aside, swap only when valid.

Readers take `holder.current` once per unit of work and keep using that
object; a reload replaces the reference, never the snapshot a reader holds.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Callable

from ..core.snapshot import Snapshot
from .problems import ConfigError


@dataclass(frozen=True)
class ReloadResult:
    swapped: bool
    snapshot: Snapshot  # the one in force after the attempt
    problems: tuple[str, ...] = ()  # why the new directory was refused, when it was


class SnapshotHolder:
    def __init__(self, build: Callable[[], Snapshot]) -> None:
        """`build` reads the trust directory; it raises ConfigError when it is not valid."""
        self._build = build
        self._lock = threading.Lock()  # one reload at a time
        self._current = build()

    @property
    def current(self) -> Snapshot:
        return self._current

    def reload(self) -> ReloadResult:
        with self._lock:
            try:
                fresh = self._build()
            except ConfigError as error:
                return ReloadResult(False, self._current, error.problems)
            if fresh.version == self._current.version:
                return ReloadResult(False, self._current)
            self._current = fresh  # a single reference assignment: readers see old or new
            return ReloadResult(True, fresh)

    async def reload_async(self) -> ReloadResult:
        """reload() in a worker thread, so the event loop keeps serving while files are read."""
        return await asyncio.get_running_loop().run_in_executor(None, self.reload)
