"""The standard library's log records as JSON lines, on standard output by default.

The audit trail (relay.audit) records what happened to messages; this is
for everything else that logs through `logging` (asyncio, aiosmtpd, library
warnings), so a container runtime or journald gets one parseable stream.
Only the record's own message is written, plus the exception's type: an
exception's text or a traceback's locals may quote client input.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import IO


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def configure_json_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Route the root logger to `stream` (standard output) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]:
        root.removeHandler(old)  # configuring twice must not duplicate every line
    root.addHandler(handler)
    root.setLevel(level)
    return handler
