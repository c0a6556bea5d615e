"""Where fetched CRLs live: one file per distribution URL in the bundle's cache folder."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path


def cache_file(cache_dir: Path, url: str) -> Path:
    """A stable, filesystem-safe name: a short hash of the URL and its last path segment."""
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", url.rstrip("/").rpartition("/")[2])[:60] or "crl"
    return cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{tail}"
