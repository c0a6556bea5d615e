"""After an attempt: a message delivered to every recipient, owing no acknowledgement, leaves the queue with
the spool's next commit, with no trip of its own off the event loop; any other outcome is recorded as before."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Sequence

import pytest

from relay.metrics.registry import Metrics
from relay.queue import delivery as delivery_module
from relay.queue.delivery import DELIVERED, FAILED, Delivery
from relay.queue.spool import Envelope, RecipientState, Spool, new_queue_id
from relay.smtp.config import DeliveryConfig

RECIPIENTS = ("bob@hospital.test", "carol@hospital.test")


class Acknowledgements:
    def __init__(self, owed: bool | Exception) -> None:
        self.owed = owed
        self.asked: list[list[str]] = []
        self.spooled: list[str] = []

    def may_owe(self, delivered: Sequence[str]) -> bool:
        self.asked.append(list(delivered))
        if isinstance(self.owed, Exception):
            raise self.owed
        return self.owed

    def after_attempt(self, envelope: Envelope, results: dict[str, tuple[str, str]], message: bytes, now: float) -> list[str]:
        self.spooled.append(envelope.queue_id)
        return []


def _attempt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, acknowledgements: Acknowledgements, replies: dict[str, str]) -> tuple[Spool, list[str]]:
    """One delivery of a message to RECIPIENTS, each answered with its status in `replies`;
    the spool afterwards and the messages concluded in a thread."""
    spool = Spool(tmp_path / "spool")
    spool.prepare()
    queue_id = new_queue_id()
    spool.store_now(b"m\r\n", Envelope(queue_id, "alice@hospital.test", tuple(RecipientState(r) for r in RECIPIENTS), 1.0, 0.0))
    monkeypatch.setattr(delivery_module, "_by_hop", lambda snapshot, pending: {None: [r.address for r in pending]})
    delivery = Delivery(spool, lambda: None, DeliveryConfig(), "relay.test", 600.0, Metrics(), acknowledger=acknowledgements)

    async def send(hop, envelope, recipients, message):
        return {r: (replies[r], "250 2.0.0 ok" if replies[r] == DELIVERED else "550 5.1.1 no such user") for r in recipients}

    concluded: list[str] = []
    conclude = delivery._conclude
    monkeypatch.setattr(delivery, "_send", send)
    monkeypatch.setattr(delivery, "_conclude", lambda lock, *rest: concluded.append(lock.queue_id) or conclude(lock, *rest))

    async def scenario() -> None:
        await delivery.deliver(queue_id)
        await asyncio.wait_for(spool.drain(), 10)

    asyncio.run(scenario())
    return spool, concluded


def _events(path: Path, name: str) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == name]


def test_delivered_to_all_and_owing_nothing_the_message_leaves_with_the_next_commit(tmp_path, monkeypatch, audit_file):
    acknowledgements = Acknowledgements(owed=False)
    spool, concluded = _attempt(tmp_path, monkeypatch, acknowledgements, dict.fromkeys(RECIPIENTS, DELIVERED))
    assert spool.ids() == []
    assert concluded == [] and acknowledgements.spooled == []
    assert acknowledgements.asked == [list(RECIPIENTS)]
    [removed] = _events(audit_file, "removed")
    assert removed["delivered"] == list(RECIPIENTS) and removed["failed"] == []


def test_an_acknowledgement_owed_is_spooled_as_before(tmp_path, monkeypatch, audit_file):
    acknowledgements = Acknowledgements(owed=True)
    spool, concluded = _attempt(tmp_path, monkeypatch, acknowledgements, dict.fromkeys(RECIPIENTS, DELIVERED))
    assert spool.ids() == []
    assert len(concluded) == 1 and acknowledgements.spooled == concluded
    assert len(_events(audit_file, "removed")) == 1


def test_a_failed_recipient_is_concluded_with_its_dsn(tmp_path, monkeypatch, audit_file):
    acknowledgements = Acknowledgements(owed=False)
    replies = {RECIPIENTS[0]: DELIVERED, RECIPIENTS[1]: FAILED}
    spool, concluded = _attempt(tmp_path, monkeypatch, acknowledgements, replies)
    [dsn_id] = spool.ids()  # the message left; its DSN to the sender is queued
    assert spool.envelope(dsn_id).mail_from == "" and len(concluded) == 1
    [removed] = _events(audit_file, "removed")
    assert removed["delivered"] == [RECIPIENTS[0]] and removed["failed"] == [RECIPIENTS[1]]


def test_a_fault_while_settling_releases_the_message(tmp_path, monkeypatch, audit_file):
    acknowledgements = Acknowledgements(owed=RuntimeError("directory unreadable"))
    with pytest.raises(RuntimeError):
        _attempt(tmp_path, monkeypatch, acknowledgements, dict.fromkeys(RECIPIENTS, DELIVERED))
    spool = Spool(tmp_path / "spool")
    [queue_id] = spool.ids()
    spool.acquire(queue_id).release()  # not held by a lost lock: the next scan delivers it


def test_the_real_acknowledgements_in_doubt_take_the_recorded_path():
    from relay.queue.mdn import Acknowledgements as Real

    def no_snapshot():
        raise RuntimeError("not loaded")

    real = Real.__new__(Real)
    real.snapshot = no_snapshot
    assert real.may_owe(["bob@hospital.test"]) is True
