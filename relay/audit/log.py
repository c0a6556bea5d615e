"""The audit trail: one JSON object per line and step, correlated by queue id and Message-ID.

Events carry identifiers, addresses, codes and fingerprints only: never a
body, a subject or an attachment name (patient data).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import structlog

_state: dict[str, Any] = {}


class AppendedLines:
    """Whole lines appended to a file, those of one event-loop turn in one write(2).

    Several service processes append to the same file: it is opened with
    O_APPEND and every write holds whole lines, so lines of different
    processes never interleave. On the event loop, the events of a turn are
    written together when the turn ends: a write per event cost more than
    rendering it, as appends wait on the journal commits of the spool's
    fsyncs. Anywhere else (a thread, a command) the line is written at once,
    after whatever is pending.
    """

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._scheduled = False

    def msg(self, line: str) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._pending.append(line.encode() + b"\n")
            if loop is None:
                self._write_pending()
                return
            if self._scheduled:
                return
            self._scheduled = True
        loop.call_soon(self.flush)

    info = warning = error = msg

    def flush(self) -> None:
        with self._lock:
            self._scheduled = False
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        data = memoryview(b"".join(self._pending))
        self._pending.clear()
        while data:
            data = data[os.write(self.fd, data) :]

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


def configure(path: Path | None, worker: int | None = None) -> None:
    """Send audit events to a file (appended) or standard error.

    `worker` (with [service] processes > 1) tags each event with the process's slot.
    """
    previous = _state.get("sink")
    if isinstance(previous, AppendedLines):
        previous.close()
    sink: Any = AppendedLines(path) if path else structlog.WriteLogger(sys.stderr)
    _state["sink"] = sink
    tags: list[Any] = [] if worker is None else [_tag(worker)]
    # One bound logger, built here: asking structlog for a new one per event
    # cost more than rendering the event.
    _state["logger"] = structlog.wrap_logger(
        sink,
        processors=[
            *tags,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False, default=_not_logged),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind()  # the bound logger itself, not a proxy that binds anew for every event


def flush() -> None:
    """Write what the current event-loop turn has recorded (at stop, before the process ends)."""
    sink = _state.get("sink")
    if isinstance(sink, AppendedLines):
        sink.flush()


atexit.register(flush)


def _tag(worker: int) -> Any:
    def add_worker(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("worker", worker)
        return event

    return add_worker


def _not_logged(value: Any) -> str:
    # Only plain values are written: never the text of an object, which could hold content.
    return f"<{type(value).__name__} not logged>"


def audit(event: str, **fields: Any) -> None:
    """Record one step; fields are plain values (addresses, codes, ids), anything else is named, not written."""
    logger = _state.get("logger")
    if logger is None:  # not configured (a command, a test): standard error
        configure(None)
        logger = _state["logger"]
    logger.info(event, **fields)

