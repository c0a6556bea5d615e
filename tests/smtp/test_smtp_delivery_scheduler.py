"""The delivery scheduler: a message that found no room starts when a delivery finishes, without a scan of
the spool; a large message is read off the event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

from relay.metrics.registry import Metrics
from relay.queue.delivery import READ_ON_LOOP_BYTES, Delivery
from relay.queue.spool import Envelope, RecipientState, Spool, new_queue_id
from relay.smtp.config import DeliveryConfig


def _store(spool: Spool) -> str:
    queue_id = new_queue_id()
    spool.store_now(b"m\r\n", Envelope(queue_id, "alice@hospital.test", (RecipientState("bob@hospital.test"),), 1.0, 0.0))
    return queue_id


class GatedDeliveries:
    """Stands for `Delivery.deliver`: each delivery waits for its gate, then removes its message."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.change = asyncio.Event()

    async def deliver(self, queue_id: str, stored: object = None) -> None:
        self.started.append(queue_id)
        self.change.set()
        await self.gates.setdefault(queue_id, asyncio.Event()).wait()
        with self.spool.locked(queue_id):
            self.spool.remove(queue_id)

    async def until_started(self, count: int) -> None:
        while len(self.started) < count:
            self.change.clear()
            await asyncio.wait_for(self.change.wait(), 10)


def test_a_message_waiting_for_room_starts_when_a_delivery_finishes(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()

    async def scenario() -> None:
        # A timed scan would come only after ten minutes: every start below is the scheduler's own.
        delivery = Delivery(spool, lambda: None, DeliveryConfig(max_concurrent=1), "relay.test", 600.0, Metrics())
        gated = GatedDeliveries(spool)
        delivery.deliver = gated.deliver  # type: ignore[method-assign]
        scans = []
        due = delivery._due
        delivery._due = lambda now: scans.append(now) or due(now)  # type: ignore[method-assign]
        runner = asyncio.create_task(delivery.run())
        first, second, third = _store(spool), _store(spool), _store(spool)
        for queue_id in (first, second, third):
            delivery.queued(queue_id)
        await gated.until_started(1)
        assert gated.started == [first]  # no room for the others
        gated.gates[first].set()
        await gated.until_started(2)
        gated.gates.setdefault(gated.started[1], asyncio.Event()).set()
        await gated.until_started(3)
        gated.gates.setdefault(gated.started[2], asyncio.Event()).set()
        await delivery.stop()
        await runner
        assert sorted(gated.started) == sorted((first, second, third))
        assert len(scans) == 1  # the one at start: finishing deliveries read no state file

    asyncio.run(scenario())


def test_a_large_message_is_read_off_the_event_loop(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.prepare()
    later = 4e9  # not due: deliver reads the message and its state, then concludes without an attempt
    small, large = new_queue_id(), new_queue_id()
    for queue_id, size in ((small, 100), (large, READ_ON_LOOP_BYTES + 1)):
        spool.store_now(b"x" * size, Envelope(queue_id, "alice@hospital.test", (RecipientState("bob@hospital.test"),), 1.0, later))
    readers: dict[str, str] = {}
    contents = spool.contents
    monkeypatch.setattr(spool, "contents", lambda lock: readers.setdefault(lock.queue_id, threading.current_thread().name) and contents(lock))

    async def scenario() -> None:
        delivery = Delivery(spool, lambda: None, DeliveryConfig(), "relay.test", 600.0, Metrics())
        for queue_id in (small, large):
            await delivery.deliver(queue_id)

    asyncio.run(scenario())
    assert readers[small] == threading.main_thread().name
    assert readers[large] != threading.main_thread().name
    assert spool.message(large) == b"x" * (READ_ON_LOOP_BYTES + 1)  # still queued, unchanged


def test_a_message_just_stored_is_not_read_back_unless_its_state_changed(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.prepare()
    later = 4e9  # not due: deliver takes the message and its state, then concludes without an attempt
    fresh, changed = new_queue_id(), new_queue_id()
    stored = {}
    for queue_id in (fresh, changed):
        envelope = Envelope(queue_id, "alice@hospital.test", (RecipientState("bob@hospital.test"),), 1.0, later)
        spool.store_now(b"message\r\n", envelope)
        stored[queue_id] = (envelope, b"message\r\n")
    spool.update(dataclasses.replace(stored[changed][0], attempts=1))  # as `relay queue retry` or an attempt would
    read: list[str] = []
    contents = spool.contents
    monkeypatch.setattr(spool, "contents", lambda lock: read.append(lock.queue_id) or contents(lock))

    async def scenario() -> None:
        delivery = Delivery(spool, lambda: None, DeliveryConfig(), "relay.test", 600.0, Metrics())
        for queue_id in (fresh, changed):
            await delivery.deliver(queue_id, stored[queue_id])

    asyncio.run(scenario())
    assert read == [changed]  # the fresh one went from memory; the changed one's state was read
    assert spool.envelope(changed).attempts == 1 and spool.envelope(fresh) == stored[fresh][0]
