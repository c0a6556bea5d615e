"""Library log records become JSON lines; exception text stays out."""

from __future__ import annotations

import io
import json
import logging
import sys

from relay.metrics.logs import JsonFormatter, configure_json_logging


def test_records_are_json_lines_and_configuring_twice_does_not_duplicate():
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    try:
        configure_json_logging(stream)
        handler = configure_json_logging(stream)
        logging.getLogger("asyncio").warning("socket.send() raised exception.")
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1
        entry = json.loads(lines[0])
        assert entry["level"] == "warning" and entry["logger"] == "asyncio"
        assert entry["event"] == "socket.send() raised exception."
        assert entry["ts"].endswith("+00:00")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_an_exception_is_named_never_quoted():
    try:
        raise ValueError("Subject: Compte rendu de M. Dupont")
    except ValueError:
        record = logging.LogRecord("mail.log", logging.ERROR, __file__, 1, "session failed", (), exc_info=True)
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert json.loads(line)["error"] == "ValueError"
    assert "Dupont" not in line
