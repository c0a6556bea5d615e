"""Every file the loader reads passes here: read once, named on failure, and
folded into the digest that becomes the snapshot's version."""

from __future__ import annotations

import hashlib
from pathlib import Path


class Sources:
    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._cache: dict[Path, bytes] = {}
        self.count = 0

    def read(self, path: Path) -> bytes:
        """The file's bytes; OSError propagates for the caller to locate."""
        path = path.resolve()
        data = self._cache.get(path)
        if data is None:
            data = self._cache[path] = path.read_bytes()
            self._digest.update(str(path).encode() + b"\0" + hashlib.sha256(data).digest())
            self.count += 1
        return data

    def forget(self, path: Path) -> None:
        """Drop a large file's bytes once parsed; its digest is kept."""
        self._cache.pop(path.resolve(), None)

    @property
    def version(self) -> str:
        return self._digest.hexdigest()[:16]
