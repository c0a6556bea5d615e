import asyncio
import dataclasses
import json
import os
import threading

import pytest

from relay.queue import spool as spool_module
from relay.queue.delivery import Backoff, safe_address
from relay.queue import syncfs
from relay.queue.spool import Envelope, Flush, MessageBusy, RecipientState, Spool, SpoolError, UnknownMessage, new_queue_id
from relay.queue.syncfs import FileSystemFlush


def _envelope(queue_id: str | None = None) -> Envelope:
    return Envelope(
        queue_id=queue_id or new_queue_id(),
        mail_from="alice@hospital.test",
        recipients=(RecipientState("bob@hospital.test"), RecipientState("carol@peer.test")),
        received_at=1.0,
        next_attempt=0.0,
    )


def test_concurrent_stores_are_committed_together(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    envelopes = [_envelope() for _ in range(20)]

    async def store_all():
        await asyncio.gather(*(spool.store(f"message {n}\r\n".encode(), e) for n, e in enumerate(envelopes)))

    asyncio.run(store_all())
    assert spool.ids() == sorted(e.queue_id for e in envelopes)
    assert spool.envelope(envelopes[3].queue_id) == envelopes[3]
    assert spool.message(envelopes[3].queue_id) == b"message 3\r\n"
    assert list(spool.tmp.iterdir()) == []


def test_crlf_only_is_never_written_to_the_spool():
    checked = dataclasses.replace(_envelope(), crlf_only=True)
    written = json.loads(checked.to_json())
    assert "crlf_only" not in written  # the format an earlier version reads back
    assert set(written) == set(json.loads(_envelope().to_json()))
    assert Envelope.from_json(checked.to_json()).crlf_only is False  # an attempt that reads the spool scans


def _recording_batches(spool, monkeypatch):
    sizes = []
    commit = spool._commit_batch
    monkeypatch.setattr(spool, "_commit_batch", lambda batch: sizes.append(len(batch)) or commit(batch))
    return sizes


def _recording_trips(spool, monkeypatch, during=lambda trips: None):
    """(messages stored, messages removed) of each trip off the event loop; `during` runs in the trip."""
    trips = []
    trip = spool._commit_and_remove

    def recorded(batch, discards):
        trips.append((len(batch), len(discards)))
        during(trips)
        return trip(batch, discards)

    monkeypatch.setattr(spool, "_commit_and_remove", recorded)
    return trips


async def _store_then(spool, envelope, then):
    """Store a judged message; once the committer has started on it, `then` (another judgement ends)."""
    with spool.expecting():
        storing = asyncio.ensure_future(spool.store(b"m\r\n", envelope))
        await asyncio.sleep(0)  # the committer starts, with the other message still expected
        then()
        await storing


def test_a_commit_waits_for_messages_still_being_judged(tmp_path, monkeypatch):
    spool = Spool(tmp_path, commit_wait=60.0)  # only an arrival can end the wait in time
    spool.prepare()
    sizes = _recording_batches(spool, monkeypatch)
    first, second = _envelope(), _envelope()

    async def two_sessions():
        judged = asyncio.Event()

        async def judged_later():
            with spool.expecting():
                await judged.wait()
                await spool.store(b"m\r\n", second)

        await asyncio.wait_for(asyncio.gather(_store_then(spool, first, judged.set), judged_later()), 10)

    asyncio.run(two_sessions())
    assert sizes == [2]
    assert spool.ids() == sorted([first.queue_id, second.queue_id])


def test_a_refused_message_does_not_hold_the_commit(tmp_path, monkeypatch):
    spool = Spool(tmp_path, commit_wait=60.0)
    spool.prepare()
    sizes = _recording_batches(spool, monkeypatch)
    stored = _envelope()

    async def sessions():
        refuse = asyncio.Event()

        async def refused():
            with spool.expecting():
                await refuse.wait()  # judged until the other message waits for it

        await asyncio.wait_for(asyncio.gather(refused(), _store_then(spool, stored, refuse.set)), 10)

    asyncio.run(sessions())
    assert sizes == [1] and spool.ids() == [stored.queue_id]


def test_a_discarded_message_leaves_with_the_next_commit_and_its_lock_is_held_until_then(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.prepare()
    delivered, arriving = _envelope(), _envelope()
    spool.store_now(b"delivered\r\n", delivered)
    trips = _recording_trips(spool, monkeypatch)

    async def scenario():
        lock = spool.acquire(delivered.queue_id)
        storing = asyncio.ensure_future(spool.store(b"m\r\n", arriving))
        removal = spool.discard(lock)
        with pytest.raises(MessageBusy):  # the lock goes with the files, not before
            spool.acquire(delivered.queue_id)
        await asyncio.wait_for(asyncio.gather(storing, removal), 10)
        return lock

    lock = asyncio.run(scenario())
    assert trips == [(1, 1)]  # one trip off the event loop for both
    assert spool.ids() == [arriving.queue_id]
    with pytest.raises(SpoolError):
        lock.read()  # released


def test_a_discard_joins_the_next_commit_or_goes_alone_after_a_while(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.prepare()
    delivered, arriving, alone = _envelope(), _envelope(), _envelope()
    for envelope in (delivered, alone):
        spool.store_now(b"m\r\n", envelope)
    trips = _recording_trips(spool, monkeypatch)

    async def scenario():
        loop = asyncio.get_running_loop()
        removal = spool.discard(spool.acquire(delivered.queue_id))
        await asyncio.sleep(0)
        assert trips == []  # waiting for a commit to join
        await spool.store(b"arriving\r\n", arriving)
        await asyncio.wait_for(removal, 10)
        start = loop.time()
        await asyncio.wait_for(spool.discard(spool.acquire(alone.queue_id)), 10)
        return loop.time() - start

    waited = asyncio.run(scenario())
    assert trips == [(1, 1), (0, 1)]
    assert waited >= spool_module._REMOVAL_WAIT
    assert spool.ids() == [arriving.queue_id]


def test_a_removal_queued_during_a_trip_waits_and_a_full_batch_goes_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "_MAX_BATCH", 2)
    monkeypatch.setattr(spool_module, "_REMOVAL_WAIT", 60)  # only the full batch may send it here, however slow the fsync
    spool = Spool(tmp_path)
    spool.prepare()
    held = [_envelope(), _envelope()]
    for envelope in held:
        spool.store_now(b"m\r\n", envelope)
    in_trip, go_on = threading.Event(), threading.Event()

    def first_trip_waits(trips):
        if len(trips) == 1:
            in_trip.set()
            go_on.wait(10)

    trips = _recording_trips(spool, monkeypatch, first_trip_waits)

    async def scenario():
        storing = asyncio.ensure_future(spool.store(b"m\r\n", _envelope()))
        await asyncio.to_thread(in_trip.wait, 10)
        first = spool.discard(spool.acquire(held[0].queue_id))  # while the store's trip runs
        go_on.set()
        await storing
        await spool._committer  # done: the removal did not go alone right after
        assert trips == [(1, 0)] and not first.done()
        second = spool.discard(spool.acquire(held[1].queue_id))  # two waiting: a full batch
        await asyncio.wait_for(asyncio.gather(first, second), 10)

    asyncio.run(scenario())
    assert trips == [(1, 0), (0, 2)]


def test_a_removal_that_fails_fails_the_discard_keeps_the_message_and_releases_it(tmp_path, monkeypatch):
    spool, envelope = _holding_one(tmp_path)

    def read_only(source, target):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(spool_module.os, "rename", read_only)

    async def scenario():
        removal = spool.discard(spool.acquire(envelope.queue_id))
        with pytest.raises(OSError, match="Read-only"):
            await asyncio.wait_for(removal, 10)

    asyncio.run(scenario())
    assert spool.ids() == [envelope.queue_id]
    spool.acquire(envelope.queue_id).release()  # free for the next attempt


def _holding_one(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    envelope = _envelope()
    spool.store_now(b"m\r\n", envelope)
    return spool, envelope


def _deliver(spool, queue_id):
    """Discard a message as delivery does once every recipient has it."""

    async def discard():
        await asyncio.wait_for(spool.discard(spool.acquire(queue_id)), 10)

    asyncio.run(discard())


def test_a_delivered_message_leaves_its_file_emptied_for_a_later_one(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    delivered, first, second = _envelope(), _envelope(), _envelope()
    spool.store_now(b"patient letter\r\n", delivered)
    inode = (spool.queue / f"{delivered.queue_id}.msg").stat().st_ino
    _deliver(spool, delivered.queue_id)
    spare = spool.tmp / f"{delivered.queue_id}.spare"
    assert spool.ids() == [] and spare.stat().st_size == 0  # nothing of the message is kept
    with pytest.raises(UnknownMessage):
        spool.acquire(delivered.queue_id)
    # Not before a queue/ fsync has made the removal durable: a crash could bring back
    # the delivered message's name on the next message's bytes.
    spool.store_now(b"first\r\n", first)
    assert (spool.queue / f"{first.queue_id}.msg").stat().st_ino != inode
    spool.store_now(b"second\r\n", second)  # first's commit synced queue/: the spare is ready
    assert (spool.queue / f"{second.queue_id}.msg").stat().st_ino == inode  # written again, not created
    assert spool.contents(spool.acquire(second.queue_id)) == (second, b"second\r\n")
    assert list(spool.tmp.iterdir()) == []


def _reused_once_opened(spool, monkeypatch, queue_id):
    """The first open of queue_id's .msg returns a descriptor of it; then, before the reader
    reads, the message is delivered and its file written again for later messages."""
    real_open = os.open
    path = str(spool.queue / f"{queue_id}.msg")

    def open_then_reuse(name, flags, *mode):
        fd = real_open(name, flags, *mode)
        if str(name) == path:
            monkeypatch.setattr(os, "open", real_open)
            _deliver(spool, queue_id)
            for _ in range(2):  # the second store finds the spare ready
                spool.store_now(b"another patient\r\n", _envelope())
        return fd

    monkeypatch.setattr(os, "open", open_then_reuse)


@pytest.mark.parametrize("read", ["message", "envelope"])
def test_a_message_read_without_its_lock_is_unknown_once_its_file_holds_another(tmp_path, monkeypatch, read):
    spool = Spool(tmp_path)
    spool.prepare()
    envelope = _envelope()
    spool.store_now(b"read\r\n", envelope)
    inode = (spool.queue / f"{envelope.queue_id}.msg").stat().st_ino
    _reused_once_opened(spool, monkeypatch, envelope.queue_id)
    with pytest.raises(UnknownMessage):
        getattr(spool, read)(envelope.queue_id)
    assert inode in {p.stat().st_ino for p in spool.queue.iterdir()}  # the file does hold another message


def test_a_state_file_that_cannot_be_removed_does_not_undo_the_removal(tmp_path, monkeypatch):
    spool, envelope = _holding_one(tmp_path)
    with spool.locked(envelope.queue_id):
        spool.update(envelope.with_results({"bob@hospital.test": ("delivered", "250 ok")}))
    real_unlink = os.unlink

    def refused(path, *args, **kwargs):
        if str(path).endswith(".json"):
            raise OSError(5, "Input/output error")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refused)
    _deliver(spool, envelope.queue_id)  # succeeds: the message has left the queue
    assert spool.ids() == []
    assert [p.name for p in spool.tmp.iterdir()] == [f"{envelope.queue_id}.spare"]
    assert (spool.tmp / f"{envelope.queue_id}.spare").stat().st_size == 0
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert Spool(tmp_path).prepare() == [f"{envelope.queue_id}.json"]  # the stray state, at start


def test_spares_are_capped_and_a_spare_gone_is_replaced_by_a_new_file(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "_MAX_SPARES", 1)
    spool = Spool(tmp_path)
    spool.prepare()
    first, second, third = _envelope(), _envelope(), _envelope()
    for envelope in (first, second):
        spool.store_now(b"m\r\n", envelope)
    for envelope in (first, second):
        _deliver(spool, envelope.queue_id)
    assert [p.name for p in spool.tmp.iterdir()] == [f"{first.queue_id}.spare"]  # the second was unlinked
    (spool.tmp / f"{first.queue_id}.spare").unlink()
    spool.store_now(b"third\r\n", third)
    assert spool.ids() == [third.queue_id] and spool.message(third.queue_id) == b"third\r\n"


def test_a_spare_that_cannot_be_emptied_is_unlinked_and_the_removal_stands(tmp_path, monkeypatch):
    spool, envelope = _holding_one(tmp_path)

    def refused(path, length):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(spool_module.os, "truncate", refused)
    _deliver(spool, envelope.queue_id)
    assert spool.ids() == [] and list(spool.tmp.iterdir()) == []


def test_a_file_retired_and_written_again_while_waiting_for_its_lock_is_not_that_message(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.prepare()
    held, arriving = _envelope(), [_envelope(), _envelope()]
    spool.store_now(b"held\r\n", held)
    held_file = os.stat(spool.queue / f"{held.queue_id}.msg").st_ino
    real_flock = spool_module.fcntl.flock

    def flock_after_reuse(fd, operation):  # between our open and flock: delivered, its file reused
        monkeypatch.setattr(spool_module.fcntl, "flock", real_flock)
        _deliver(spool, held.queue_id)
        for envelope in arriving:  # the second store finds the spare ready
            spool.store_now(b"arriving\r\n", envelope)
        return real_flock(fd, operation)

    monkeypatch.setattr(spool_module.fcntl, "flock", flock_after_reuse)
    with pytest.raises(UnknownMessage):
        spool.acquire(held.queue_id)
    assert spool.ids() == sorted(e.queue_id for e in arriving)
    # The file locked is another message's now: written again, not only removed.
    assert held_file in {os.stat(spool.queue / f"{e.queue_id}.msg").st_ino for e in arriving}


def test_a_fault_of_the_trip_fails_its_waiters_and_the_loop_goes_on(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.prepare()
    held, first, later = _envelope(), _envelope(), _envelope()
    spool.store_now(b"m\r\n", held)
    trip = spool._commit_and_remove

    def broken(batch, discards):
        monkeypatch.setattr(spool, "_commit_and_remove", trip)  # the next trip works
        raise RuntimeError("unexpected")

    monkeypatch.setattr(spool, "_commit_and_remove", broken)

    async def scenario():
        lock = spool.acquire(held.queue_id)
        storing = asyncio.ensure_future(spool.store(b"m\r\n", first))
        removal = spool.discard(lock)
        outcomes = await asyncio.wait_for(asyncio.gather(storing, removal, return_exceptions=True), 10)
        assert [type(o) for o in outcomes] == [SpoolError, SpoolError]
        spool.acquire(held.queue_id).release()  # the lock was released
        await asyncio.wait_for(spool.store(b"m\r\n", later), 10)
        await asyncio.wait_for(spool.drain(), 10)

    asyncio.run(scenario())
    assert later.queue_id in spool.ids() and held.queue_id in spool.ids()


def test_drain_waits_for_the_removals_under_way(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    envelope = _envelope()
    spool.store_now(b"m\r\n", envelope)

    async def scenario():
        removal = spool.discard(spool.acquire(envelope.queue_id))
        await asyncio.wait_for(spool.drain(), 10)
        assert removal.done() and removal.exception() is None

    asyncio.run(scenario())
    assert spool.ids() == []


def test_without_messages_being_judged_a_commit_does_not_wait(tmp_path):
    spool = Spool(tmp_path, commit_wait=60.0)
    spool.prepare()
    asyncio.run(asyncio.wait_for(spool.store(b"m\r\n", _envelope()), 10))
    assert len(spool.ids()) == 1


def test_a_filesystem_flush_commits_a_batch_with_one_syncfs(tmp_path, monkeypatch):
    spool = Spool(tmp_path, flush=Flush.FILESYSTEM)
    spool.prepare()
    flushes, synced = [], []
    real_call, real_fsync = FileSystemFlush.__call__, os.fsync
    monkeypatch.setattr(FileSystemFlush, "__call__", lambda self: flushes.append(1) or real_call(self))
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    envelopes = [_envelope() for _ in range(5)]

    async def store_all():
        await asyncio.gather(*(spool.store(b"m\r\n", e) for e in envelopes))

    asyncio.run(store_all())
    assert spool.ids() == sorted(e.queue_id for e in envelopes)
    assert len(flushes) == 1 and synced == [str(spool.queue)]  # no file fsynced on its own


def test_a_lost_write_fails_the_whole_batch_and_leaves_nothing(tmp_path, monkeypatch):
    spool = Spool(tmp_path, flush=Flush.FILESYSTEM)
    spool.prepare()

    def lost(self):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(FileSystemFlush, "__call__", lost)

    async def store_all():
        return await asyncio.gather(*(spool.store(b"m\r\n", _envelope()) for _ in range(3)), return_exceptions=True)

    outcomes = asyncio.run(store_all())
    assert [type(o) for o in outcomes] == [SpoolError] * 3
    assert all("spool flush failed: Input/output error" in str(o) for o in outcomes)
    assert spool.ids() == [] and list(spool.tmp.iterdir()) == []


def test_a_file_system_that_cannot_be_opened_for_flushing_is_a_storage_error(tmp_path, monkeypatch):
    spool = Spool(tmp_path, flush=Flush.FILESYSTEM)
    spool.prepare()

    def unopenable(self, directory):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(FileSystemFlush, "__init__", unopenable)

    async def store_two():
        return await asyncio.gather(*(spool.store(b"m\r\n", _envelope()) for _ in range(2)), return_exceptions=True)

    outcomes = asyncio.run(store_two())
    assert all(isinstance(o, SpoolError) and "spool flush failed: Too many open files" in str(o) for o in outcomes)
    assert spool.ids() == [] and list(spool.tmp.iterdir()) == []


@pytest.mark.parametrize(
    "release, reports",
    [("6.18.44-fc-v595", True), ("5.8.0", True), ("5.10.0-28-amd64", True), ("5.7.19", False), ("4.19.0-26-amd64", False), ("unknown", False)],
)
def test_syncfs_is_trusted_from_linux_5_8(release, reports):
    assert syncfs.kernel_reports_errors(release) is reports


def test_recovery_drops_half_written_messages(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    whole = _envelope()
    spool.store_now(b"whole\r\n", whole)
    (spool.tmp / "abc.msg").write_bytes(b"half")  # crash while writing
    ghost = new_queue_id()
    (spool.queue / f"{ghost}.json").write_bytes(_envelope(ghost).to_json())  # crash while removing
    (spool.tmp / f"{new_queue_id()}.spare").write_bytes(b"")  # a delivered message's emptied file
    emptied = new_queue_id()
    (spool.queue / f"{emptied}.msg").write_bytes(b"")  # a retirement whose emptying reached the disk first
    removed = Spool(tmp_path).prepare()
    assert sorted(removed) == sorted(["tmp/abc.msg", f"{ghost}.json", f"{emptied}.msg"])
    assert list(spool.tmp.iterdir()) == []
    assert spool.ids() == [whole.queue_id]
    assert spool.message(whole.queue_id) == b"whole\r\n"


def test_one_file_and_one_fsync_commit_a_message(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.prepare()
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    env = _envelope()
    spool.store_now(b"m\r\n", env)
    assert [p.name for p in spool.queue.iterdir()] == [f"{env.queue_id}.msg"]
    assert synced == [str(spool.tmp / f"{env.queue_id}.msg"), str(spool.queue)]


def test_an_earlier_layout_is_converted_at_start(tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir(parents=True)
    kept = _envelope().with_results({"bob@hospital.test": ("delivered", "250 ok")})
    (queue / f"{kept.queue_id}.eml").write_bytes(b"Subject: kept\r\n\r\nbody\r\n")
    (queue / f"{kept.queue_id}.json").write_bytes(kept.to_json())
    orphan = new_queue_id()
    (queue / f"{orphan}.eml").write_bytes(b"renamed, state not yet")  # never acknowledged
    spool = Spool(tmp_path)
    assert spool.prepare() == [f"{orphan}.eml"]
    assert sorted(p.name for p in queue.iterdir()) == [f"{kept.queue_id}.msg"]
    assert spool.envelope(kept.queue_id) == kept
    assert spool.message(kept.queue_id) == b"Subject: kept\r\n\r\nbody\r\n"
    assert [r.address for r in spool.envelope(kept.queue_id).pending] == ["carol@peer.test"]


def test_a_large_spool_of_the_earlier_layout_is_converted_in_batches(tmp_path, monkeypatch):
    queue = tmp_path / "queue"
    queue.mkdir(parents=True)
    envelopes = [_envelope() for _ in range(150)]
    for n, env in enumerate(envelopes):
        (queue / f"{env.queue_id}.eml").write_bytes(b"Subject: %d\r\n\r\nbody\r\n" % n)
        (queue / f"{env.queue_id}.json").write_bytes(env.to_json())
    spool = Spool(tmp_path)
    commits = []
    real_commit = spool._commit_batch
    monkeypatch.setattr(spool, "_commit_batch", lambda batch: commits.append(len(batch)) or real_commit(batch))
    assert spool.prepare() == []
    assert commits == [64, 64, 22]
    assert spool.ids() == sorted(e.queue_id for e in envelopes)
    assert sorted(p.suffix for p in queue.iterdir()) == [".msg"] * 150
    assert {spool.message(e.queue_id) for e in envelopes} == {b"Subject: %d\r\n\r\nbody\r\n" % n for n in range(150)}


def test_a_conversion_that_cannot_write_fails_the_start_and_keeps_the_earlier_files(tmp_path, monkeypatch):
    queue = tmp_path / "queue"
    queue.mkdir(parents=True)
    env = _envelope()
    (queue / f"{env.queue_id}.eml").write_bytes(b"Subject: kept\r\n\r\nbody\r\n")
    (queue / f"{env.queue_id}.json").write_bytes(env.to_json())

    def disk_full(path, data, synced, reused=False):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module, "_write_file", disk_full)
    with pytest.raises(SpoolError, match="No space left"):
        Spool(tmp_path).prepare()
    assert sorted(p.name for p in queue.iterdir()) == [f"{env.queue_id}.eml", f"{env.queue_id}.json"]


def test_an_unreadable_earlier_state_is_left_for_the_operator(tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir(parents=True)
    stuck = new_queue_id()
    (queue / f"{stuck}.eml").write_bytes(b"Subject: kept\r\n\r\nbody\r\n")
    (queue / f"{stuck}.json").write_bytes(b"{not json")
    assert Spool(tmp_path).prepare() == []
    assert sorted(p.name for p in queue.iterdir()) == [f"{stuck}.eml", f"{stuck}.json"]


def test_a_state_change_is_read_instead_of_the_accepted_envelope(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    env = _envelope()
    spool.store_now(b"m\r\n", env)
    later = env.with_results({"bob@hospital.test": ("delivered", "250 ok")})
    with spool.locked(env.queue_id):
        spool.update(later)
    lock = spool.acquire(env.queue_id)
    try:
        assert spool.contents(lock) == (later, b"m\r\n")
    finally:
        lock.release()
    assert spool.envelope(env.queue_id) == later


def test_a_message_removed_while_waiting_for_its_lock_is_unknown(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.prepare()
    env = _envelope()
    spool.store_now(b"m\r\n", env)
    real_flock = spool_module.fcntl.flock

    def flock_after_removal(fd, operation):  # the holder removes it between our open and flock
        spool.remove(env.queue_id)
        return real_flock(fd, operation)

    monkeypatch.setattr(spool_module.fcntl, "flock", flock_after_removal)
    with pytest.raises(UnknownMessage):
        spool.acquire(env.queue_id)


def test_lock_update_remove(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    env = _envelope()
    spool.store_now(b"m\r\n", env)
    with spool.locked(env.queue_id):
        with pytest.raises(MessageBusy):
            with spool.locked(env.queue_id):
                pass
        spool.update(env.with_results({"bob@hospital.test": ("delivered", "250 ok")}))
    assert [r.address for r in spool.envelope(env.queue_id).pending] == ["carol@peer.test"]
    with spool.locked(env.queue_id):
        spool.remove(env.queue_id)
    with pytest.raises(UnknownMessage):
        spool.envelope(env.queue_id)
    with pytest.raises(UnknownMessage):
        with spool.locked("../../etc/passwd"):
            pass


def test_the_lock_reads_the_message_it_holds(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    env = _envelope()
    body = b"".join(b"line %d\r\n" % n for n in range(100_000))  # larger than one read buffer
    spool.store_now(body, env)
    lock = spool.acquire(env.queue_id)
    assert spool.contents(lock) == (env, body) and spool.message(env.queue_id) == body
    spool.remove(env.queue_id)
    assert spool.contents(lock)[1] == body  # still open: the removed file stays readable until released
    lock.release()
    with pytest.raises(SpoolError):
        spool.contents(lock)
    assert spool.ids() == [] and list(spool.queue.iterdir()) == []


def test_write_failure_is_reported_and_leaves_nothing(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    os.rmdir(spool.tmp)
    spool.tmp.write_text("not a directory")
    with pytest.raises(SpoolError):
        asyncio.run(spool.store(b"m\r\n", _envelope()))
    assert spool.ids() == []


def test_backoff_doubles_up_to_a_cap():
    backoff = Backoff(first=300, maximum=3600)
    assert [backoff.delay(n) for n in range(1, 7)] == [300, 600, 1200, 2400, 3600, 3600]


@pytest.mark.parametrize(
    "address, ok",
    [
        ("bob@hospital.test", True),
        ("o'brien+lab/x=y{1}@hospital.test", True),
        ("bob@[192.0.2.1]", True),
        ("bob@hospital.test>\r\nRCPT TO:<x@y", False),
        ("a b@c.test", False),
        ("a@b.test\n", False),
        ("é@b.test", False),
        # what a path parser reads as another mailbox: never sent
        ("a:b@hospital.test", False),
        ("a[b@hospital.test", False),
        ("bob@hospital.test:other", False),
        ("@relay.test:bob@hospital.test", False),
    ],
)
def test_addresses_cannot_inject_commands_or_name_another_mailbox(address, ok):
    assert safe_address(address) is ok


def test_an_envelope_longer_than_the_first_read_is_read_whole(tmp_path):
    spool = Spool(tmp_path)
    spool.prepare()
    many = tuple(RecipientState(f"recipient-{n:04d}-with-a-long-local-part@hospital.test") for n in range(300))
    env = Envelope(queue_id=new_queue_id(), mail_from="alice@hospital.test", recipients=many, received_at=1.0, next_attempt=0.0)
    assert len(env.to_json()) > 16_000
    spool.store_now(b"m\r\n", env)
    assert spool.envelope(env.queue_id) == env
    assert spool.message(env.queue_id) == b"m\r\n"
