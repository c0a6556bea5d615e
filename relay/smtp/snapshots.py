"""The current trust snapshot of the running service, and how to load a new one.

A loader is a picklable callable: verification workers in other processes
call it themselves, so the snapshot never needs to cross a process boundary.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

from ..core.snapshot import Snapshot

SnapshotLoader = Callable[[], Snapshot]


def _load_from_config(path: Path) -> Snapshot:
    from ..trust.loader import load_snapshot  # the edge that reads the trust directory

    return load_snapshot(path)


def config_loader(path: Path) -> SnapshotLoader:
    return functools.partial(_load_from_config, path)


class SnapshotHolder:
    """Holds one immutable Snapshot; a reload builds a new one and swaps the reference."""

    def __init__(self, loader: SnapshotLoader) -> None:
        self.loader = loader
        self._current = loader()

    @property
    def current(self) -> Snapshot:
        return self._current

    def reload(self) -> Snapshot:
        """Load and swap; on any error the previous snapshot stays in force and the error propagates."""
        fresh = self.loader()
        self._current = fresh
        return fresh
