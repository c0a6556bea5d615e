"""The audit file: whole JSON lines, those of one event-loop turn in one write, nothing lost at flush."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest

from relay.audit import log


@pytest.fixture
def audit_file(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log.configure(path)
    yield path
    log.configure(None)


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_outside_an_event_loop_each_event_is_written_at_once(audit_file: Path) -> None:
    log.audit("connect", peer="127.0.0.1")
    assert [e["event"] for e in _events(audit_file)] == ["connect"]


def test_the_events_of_one_turn_are_one_write_at_its_end(audit_file: Path, monkeypatch) -> None:
    writes: list[bytes] = []
    real_write = os.write
    monkeypatch.setattr(log.os, "write", lambda fd, data: writes.append(bytes(data)) or real_write(fd, data))

    async def turn() -> int:
        for n in range(5):
            log.audit("rcpt", rcpt=f"r{n}@hospital.test", refused=None)
        written_during_the_turn = len(writes)
        await asyncio.sleep(0)  # the turn ends: the flush runs
        return written_during_the_turn

    assert asyncio.run(turn()) == 0
    assert len(writes) == 1 and writes[0].count(b"\n") == 5
    assert [e["rcpt"] for e in _events(audit_file)] == [f"r{n}@hospital.test" for n in range(5)]


def test_a_thread_writes_after_what_the_loop_has_pending(audit_file: Path) -> None:
    async def main() -> None:
        log.audit("queued", queue_id="a")
        thread = threading.Thread(target=log.audit, args=("removed",), kwargs={"queue_id": "a"})
        thread.start()
        thread.join()

    asyncio.run(main())
    assert [e["event"] for e in _events(audit_file)] == ["queued", "removed"]


def test_flush_writes_what_is_pending(audit_file: Path) -> None:
    async def main() -> None:
        log.audit("stopped")
        log.flush()
        assert [e["event"] for e in _events(audit_file)] == ["stopped"]

    asyncio.run(main())
    assert len(_events(audit_file)) == 1  # the scheduled flush found nothing more


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
