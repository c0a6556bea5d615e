"""The audit trail: one JSON object per line and step, correlated by queue id and Message-ID.

Events carry identifiers, addresses, codes and fingerprints only: never a
body, a subject or an attachment name (patient data).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO, Any

import structlog

_ALLOWED_VALUE_TYPES = (str, int, float, bool, type(None), list, tuple, dict)
_state: dict[str, Any] = {}


def configure(path: Path | None, worker: int | None = None) -> IO[str]:
    """Send audit events to a file (appended) or standard error; returns the open stream.

    Several service processes append to the same file: the stream is line
    buffered and opened with O_APPEND, so each event is one write(2) of a
    whole line at the end of the file, never interleaved with another's.
    `worker` (with [service] processes > 1) tags each event with the process's slot.
    """
    stream: IO[str] = open(path, "a", encoding="utf-8", buffering=1) if path else sys.stderr
    tags: list[Any] = [] if worker is None else [_tag(worker)]
    # One bound logger, built here: asking structlog for a new one per event
    # cost more than rendering the event.
    _state["logger"] = structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[
            *tags,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    return stream


def _tag(worker: int) -> Any:
    def add_worker(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("worker", worker)
        return event

    return add_worker


def audit(event: str, **fields: Any) -> None:
    """Record one step; fields are plain values (addresses, codes, ids)."""
    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items() if isinstance(v, _ALLOWED_VALUE_TYPES)}
    logger = _state.get("logger")
    if logger is None:  # not configured (a command, a test): standard error
        configure(None)
        logger = _state["logger"]
    logger.info(event, **clean)
