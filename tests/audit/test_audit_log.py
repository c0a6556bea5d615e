"""The audit file: each event one whole JSON line, written at once, appended; only plain values."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from relay.audit import log


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_event_is_one_write_of_a_whole_line_at_once(audit_file: Path, monkeypatch) -> None:
    writes: list[bytes] = []
    real_write = os.write
    monkeypatch.setattr(log.os, "write", lambda fd, data: writes.append(bytes(data)) or real_write(fd, data))

    async def session() -> None:
        log.audit("rcpt", rcpt="r@hospital.test", refused=None)
        # Before anything else runs (the reply the decision is followed by): on disk.
        assert [e["event"] for e in _events(audit_file)] == ["rcpt"]
        log.audit("done", queue_id="a")

    asyncio.run(session())
    assert len(writes) == 2 and all(w.endswith(b"\n") and w.count(b"\n") == 1 for w in writes)
    assert [e["event"] for e in _events(audit_file)] == ["rcpt", "done"]


def test_the_file_is_appended_and_not_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"event": "earlier"}\n')
    path.chmod(0o640)
    log.configure(path)
    try:
        log.audit("started")
    finally:
        log.configure(None)
    assert [e["event"] for e in _events(path)] == ["earlier", "started"]
    fresh = tmp_path / "fresh.jsonl"
    log.configure(fresh)
    log.configure(None)
    assert fresh.stat().st_mode & 0o777 == 0o640 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_only_plain_values_are_written(audit_file: Path) -> None:
    class Message:
        def __repr__(self) -> str:
            return "Subject: résultats du patient"

    log.audit("done", queue_id="a", rcpts=("b@hospital.test",), body=b"diagnostic", message=Message())
    (event,) = _events(audit_file)
    assert event["rcpts"] == ["b@hospital.test"]
    assert event["body"] == "<bytes not logged>" and event["message"] == "<Message not logged>"
    assert "patient" not in audit_file.read_text() and "diagnostic" not in audit_file.read_text()
