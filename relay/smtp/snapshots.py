"""How the running service loads its trust snapshot.

A loader is a picklable callable: verification workers in other processes
call it themselves, so the snapshot never needs to cross a process boundary.
The current snapshot and its reload live in relay.trust.holder.
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
