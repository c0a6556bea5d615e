"""The audit trail: one JSON object per line and step, correlated by queue id and Message-ID.

Events carry identifiers, addresses, codes and fingerprints only: never a
body, a subject or an attachment name (patient data).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import structlog

_ALLOWED_VALUE_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


def configure(path: Path | None) -> IO[str]:
    """Send audit events to a file (appended) or standard error; returns the open stream."""
    stream: IO[str] = open(path, "a", encoding="utf-8", buffering=1) if path else sys.stderr
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    return stream


def audit(event: str, **fields: Any) -> None:
    """Record one step; fields are plain values (addresses, codes, ids)."""
    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items() if isinstance(v, _ALLOWED_VALUE_TYPES)}
    structlog.get_logger().info(event, **clean)
