"""Every file the loader reads passes here: read once, named on failure, and
folded into the digest that becomes the snapshot's version."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

_CHUNK = 1 << 16


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
            self._fold(path, hashlib.sha256(data).digest())
        return data

    @contextmanager
    def stream(self, path: Path) -> Iterator[HashedStream]:
        """A large file for a streaming parser, never held whole: its SHA-256
        comes from the same read and joins the version once the block ends
        without error. OSError propagates for the caller to locate."""
        path = path.resolve()
        with path.open("rb") as handle:
            stream = HashedStream(handle)
            yield stream
            digest = stream.sha256()
        self._fold(path, digest)

    def forget(self, path: Path) -> None:
        """Drop a large file's bytes once parsed; its digest is kept."""
        self._cache.pop(path.resolve(), None)

    def _fold(self, path: Path, sha256: bytes) -> None:
        self._digest.update(str(path).encode() + b"\0" + sha256)
        self.count += 1

    @property
    def version(self) -> str:
        return self._digest.hexdigest()[:16]


class HashedStream:
    """A binary file whose SHA-256 is computed from the bytes as they are read."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        return data

    def sha256(self) -> bytes:
        """The digest of the whole file: what the reader left unread is read first."""
        while self.read(_CHUNK):
            pass
        return self._hash.digest()
