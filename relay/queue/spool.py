"""The durable spool: a message is accepted only once it is on disk for good.

Layout under the spool directory:
  tmp/          files being written, and spares (emptied files of delivered
                messages, written again for later ones); never trusted,
                removed on recovery
  queue/ID.msg  the envelope as accepted (one JSON line), then the message
                bytes; written once, and its arrival commits the message
  queue/ID.json the delivery state once it changes (an attempt that left
                recipients pending); read instead of the .msg's first line

Commit: write ID.msg in tmp/, fsync it, rename it into queue/, fsync queue/.
One file and one fsync per message, and concurrent commits share one
directory fsync (group commit). A crash before the rename leaves nothing in
queue/ (never acknowledged); after it, the whole message. While other
messages of the process are still being judged, a commit waits for them a
moment (commit_wait) so that their flushes are issued together. With
Flush.FILESYSTEM a batch of several messages is flushed by one syncfs instead
of one fsync per file (relay.queue.syncfs).

Removal takes the .msg first, then the .json: a crash between leaves a .json
alone, which recovery removes. A delivered message leaves the queue by a
rename of its .msg to tmp/ID.spare, which is emptied and kept for a later
message of the same process: creating a file costs the file system an inode
allocation, which ext4 without a journal makes scan past inodes freed in the
last half minute (see docs/service.md, Spool). The .msg is also the
message's lock (flock): delivery and the `relay queue` command take it
before changing or removing a message. Spools of earlier versions (ID.eml plus ID.json) are converted
when the service starts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..trust.atomic import fsync_dir
from .syncfs import FileSystemFlush


class SpoolError(OSError):
    """The spool could not store or change a message."""


class MessageBusy(SpoolError):
    """Another process holds the message (a delivery in progress)."""


class UnknownMessage(SpoolError):
    """No message with this id in the spool."""


_ID = re.compile(r"[0-9a-f]{12,40}")


def new_queue_id() -> str:
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(5)}"


def valid_queue_id(text: str) -> bool:
    return bool(_ID.fullmatch(text))


@dataclass(frozen=True, slots=True)
class RecipientState:
    address: str
    status: str = "pending"  # pending | delivered | failed
    reply: str = ""  # last reply or error from the next hop

    @property
    def pending(self) -> bool:
        return self.status == "pending"


@dataclass(frozen=True, slots=True)
class Envelope:
    queue_id: str
    mail_from: str  # "" for the null sender (DSNs)
    recipients: tuple[RecipientState, ...]
    received_at: float  # POSIX seconds
    next_attempt: float
    attempts: int = 0
    message_id: str | None = None
    is_dsn: bool = False
    listener: str = ""
    extra: dict = field(default_factory=dict)  # audit correlation (signer fingerprint...), never content
    # Every line break of the message was found to be CRLF when it was accepted
    # (the DATA check), so delivery sends it without scanning it again. Known
    # only to the process that accepted it, for the attempt it starts at once:
    # never written, so the spool's format is unchanged (an earlier version
    # reads it back), and an attempt that reads the spool scans.
    crlf_only: bool = field(default=False, compare=False)

    def to_json(self) -> bytes:
        # Field by field: dataclasses.asdict deep-copies, ~0.2 ms a message.
        data = {name: getattr(self, name) for name in _ENVELOPE_FIELDS}
        data["recipients"] = [{"address": r.address, "status": r.status, "reply": r.reply} for r in self.recipients]
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        data = json.loads(raw)
        data["recipients"] = tuple(RecipientState(**r) for r in data["recipients"])
        return cls(**data)

    @property
    def pending(self) -> tuple[RecipientState, ...]:
        return tuple(r for r in self.recipients if r.pending)

    def with_results(self, results: dict[str, tuple[str, str]]) -> Envelope:
        """Recipients updated from {address: (status, reply)}."""
        updated = tuple(
            replace(r, status=results[r.address][0], reply=results[r.address][1]) if r.address in results else r
            for r in self.recipients
        )
        return replace(self, recipients=updated)

    @property
    def received(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.received_at, dt.timezone.utc)


_ENVELOPE_FIELDS = tuple(f.name for f in fields(Envelope) if f.name != "crlf_only")

Stored = tuple[Envelope, bytes]  # a message as the spool holds it: its state and its bytes


_MESSAGE, _STATE, _SPARE = ".msg", ".json", ".spare"
_MAX_SPARES = 256  # emptied files a process keeps for its next messages; beyond, removal unlinks
# Converting a spool of the earlier layout: messages (and bytes) held at once.
_CONVERSION_BATCH, _CONVERSION_BYTES = 64, 64 << 20
_MAX_BATCH = 64  # a commit stops waiting for expected messages once it holds this many
_REMOVAL_WAIT = 0.05  # seconds a removal waits for a commit to join before it goes alone


class Flush(StrEnum):
    """How a batch of several messages is made durable."""

    FILES = "files"  # one fsync per file: touches nothing else on the file system
    FILESYSTEM = "filesystem"  # one syncfs per batch: also flushes other files' pending writes


class Spool:
    def __init__(self, directory: Path, commit_wait: float = 0.0, flush: Flush = Flush.FILES) -> None:
        self.directory = directory
        self.commit_wait = commit_wait
        self.flush = flush
        self._flush_filesystem: FileSystemFlush | None = None
        self.tmp = directory / "tmp"
        self.queue = directory / "queue"
        # Delivery opens a message's files several times per attempt: string
        # paths spare pathlib's per-call object building and formatting.
        self._queue_prefix = f"{self.queue}{os.sep}"
        self._tmp_prefix = f"{self.tmp}{os.sep}"
        self._spares = _Spares(_MAX_SPARES)
        self._pending: list[tuple[bytes, Envelope, asyncio.Future[None]]] = []
        self._discards: list[tuple[MessageLock, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._expected = 0  # messages between end of DATA and their store (see expecting)
        self._arrival: asyncio.Future[None] | None = None  # what the committer waits on
        self._removal_timer: asyncio.TimerHandle | None = None  # removals go alone when it fires
        self._removals_go = False  # the timer fired (or drain, or a full batch): removals go alone
        self._io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="spool")

    # -- set-up and recovery ---------------------------------------------

    def prepare(self) -> list[str]:
        """Create the directories, convert an earlier version's messages and clean what a
        crash left; returns the removed names."""
        for path in (self.tmp, self.queue):
            path.mkdir(parents=True, exist_ok=True)
        removed = []
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
            if leftover.suffix != _SPARE:  # a spare held no message
                removed.append(f"tmp/{leftover.name}")
        for message in self.queue.glob(f"*{_MESSAGE}"):
            # A committed .msg starts with its envelope line: an empty one is a retirement
            # whose emptying reached the disk before its rename did.
            if message.stat().st_size == 0:
                message.unlink(missing_ok=True)
                removed.append(message.name)
        removed += self._convert_earlier_layout()
        for state in self.queue.glob(f"*{_STATE}"):
            if not state.with_suffix(_MESSAGE).exists() and not state.with_suffix(".eml").exists():
                state.unlink(missing_ok=True)  # its message was removed just before a crash
                removed.append(state.name)
        fsync_dir(self.queue)
        return removed

    def _convert_earlier_layout(self) -> list[str]:
        """ID.eml plus ID.json (the state file committed the message) become ID.msg, an
        .eml alone was never acknowledged; an unreadable .json is left for the operator."""
        removed: list[str] = []
        batch: list[tuple[bytes, Envelope]] = []
        held = 0  # bytes in batch
        for eml in self.queue.glob("*.eml"):
            state = eml.with_suffix(_STATE)
            if _locked(eml):
                continue  # an earlier version still runs: never touch its messages
            if eml.with_suffix(_MESSAGE).exists():
                eml.unlink(missing_ok=True)  # converted before a crash
            elif not state.exists():
                eml.unlink(missing_ok=True)
                removed.append(eml.name)
            else:
                try:
                    envelope = Envelope.from_json(state.read_bytes())
                except (ValueError, TypeError, KeyError):
                    continue
                message = eml.read_bytes()
                batch.append((message, envelope))
                held += len(message)
                # Committed like concurrent messages, a batch at a time: a large backlog
                # costs one directory fsync per batch, not per message.
                if len(batch) == _CONVERSION_BATCH or held > _CONVERSION_BYTES:
                    self._convert(batch)
                    batch, held = [], 0
        if batch:
            self._convert(batch)
        return removed

    def _convert(self, batch: list[tuple[bytes, Envelope]]) -> None:
        for (_, envelope), outcome in zip(batch, self._commit_batch(batch)):
            if outcome is not None:
                raise outcome  # the earlier files stay: nothing is lost, the start fails with the cause
            os.unlink(self._queued(envelope.queue_id, _STATE))
            os.unlink(self._queued(envelope.queue_id, ".eml"))

    # -- storing (group commit) ------------------------------------------

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Marks a message on its way to `store` (being judged): a commit started meanwhile
        waits for it, at most commit_wait, instead of flushing alone."""
        self._expected += 1
        try:
            yield
        finally:
            self._expected -= 1
            self._wake()  # refused, or stored: either way the committer need not wait for it

    async def store(self, message: bytes, envelope: Envelope) -> None:
        """Return once the message is durable; raise SpoolError otherwise."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((message, envelope, done))
        self._kick()
        await done

    def discard(self, lock: MessageLock) -> asyncio.Future[None]:
        """Remove a settled message and release its lock, with the next commit (or alone after
        _REMOVAL_WAIT, or once _MAX_BATCH wait), off the event loop; the caller need not wait.
        The lock is held until then, so no one else takes the message meanwhile. The future
        fails with the removal's OSError (the message stays)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._discards.append((lock, done))
        # Under load another message is committed within milliseconds: the removal joins
        # that trip (a hand-off to a thread costs more than the removal itself).
        if len(self._discards) >= _MAX_BATCH:
            self._removals_due()
        elif self._removal_timer is None:
            self._removal_timer = asyncio.get_running_loop().call_later(_REMOVAL_WAIT, self._removals_due)
        return done

    def _removals_due(self) -> None:
        if self._removal_timer is not None:
            self._removal_timer.cancel()
            self._removal_timer = None
        self._removals_go = True
        self._kick()

    async def drain(self) -> None:
        """Wait for the commits and removals under way (at shutdown)."""
        if self._discards:
            self._removals_due()
        while self._committer is not None and not self._committer.done():
            await self._committer

    def _kick(self) -> None:
        self._wake()
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop())

    def _wake(self) -> None:
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)

    async def _gather(self) -> None:
        """Wait, at most commit_wait, while expected messages may still join the batch."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.commit_wait
        while self._expected > len(self._pending) and len(self._pending) < _MAX_BATCH:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrival = loop.create_future()
            timer = loop.call_later(remaining, self._wake)
            try:
                await self._arrival
            finally:
                timer.cancel()
                self._arrival = None

    async def _commit_loop(self) -> None:
        while self._pending or (self._discards and self._removals_go):
            if self._pending and self.commit_wait:
                await self._gather()
            batch, self._pending = self._pending, []
            discards, self._discards = self._discards, []
            if discards:  # those that come during the trip wait for the next one, or their timer
                self._removals_go = False
                if self._removal_timer is not None:
                    self._removal_timer.cancel()
                    self._removal_timer = None
            try:
                stored, removed = await asyncio.to_thread(
                    self._commit_and_remove, [(m, e) for m, e, _ in batch], [lock for lock, _ in discards]
                )
            except Exception as error:  # a fault of the trip itself: every waiter hears of it, the loop goes on
                fault = SpoolError(errno.EIO, f"spool commit failed: {type(error).__name__}: {error}")
                stored, removed = [fault] * len(batch), [fault] * len(discards)
                for lock, _ in discards:
                    _release_quietly(lock)
            _settle([done for _, _, done in batch], stored)
            _settle([done for _, done in discards], removed)

    def _commit_and_remove(
        self, batch: list[tuple[bytes, Envelope]], discards: list[MessageLock]
    ) -> tuple[list[SpoolError | None], list[OSError | None]]:
        """One trip off the event loop: the batch committed first (its senders wait for their
        replies), then the settled messages removed and their locks released."""
        stored = self._commit_batch(batch) if batch else []
        return stored, [self._remove_held(lock) for lock in discards]

    def _remove_held(self, lock: MessageLock) -> OSError | None:
        spare = None
        try:
            spare = self._retire(lock.queue_id)
            return None
        except OSError as error:
            return error
        finally:
            _release_quietly(lock)
            if spare is not None:  # not before: a store must not write into a file still locked
                self._spares.keep(spare)

    def _commit_batch(self, batch: list[tuple[bytes, Envelope]]) -> list[SpoolError | None]:
        if len(batch) == 1:  # nothing to overlap: no hand-off to another thread
            outcomes = [self._write_one(batch[0])]
        elif self.flush is Flush.FILESYSTEM:
            outcomes = self._write_flushed(batch)
        else:
            # Written and fsynced concurrently: the file system merges concurrent
            # flushes into one journal commit.
            outcomes = list(self._io.map(self._write_one, batch))
        committed = [envelope.queue_id for (_, envelope), outcome in zip(batch, outcomes) if outcome is None]
        try:
            for queue_id in committed:
                os.rename(self.tmp / f"{queue_id}{_MESSAGE}", self._queued(queue_id, _MESSAGE))
            self._spares.sync(self.queue)
        except OSError as error:
            return [_spool_error("commit", error) for _ in batch]
        return outcomes

    def _write_flushed(self, batch: list[tuple[bytes, Envelope]]) -> list[SpoolError | None]:
        """The batch written unsynced, then one syncfs; a failed flush fails every message."""
        try:
            if self._flush_filesystem is None:
                # Opened before the first unsynced write: it reports every write-back error after it.
                self._flush_filesystem = FileSystemFlush(self.directory)
        except OSError as error:
            return [_spool_error("flush", error) for _ in batch]
        outcomes = [self._write_one(item, synced=False) for item in batch]
        try:
            self._flush_filesystem()
        except OSError as error:  # which file lost its write is unknown: none is committed
            for (_, envelope), outcome in zip(batch, outcomes):
                if outcome is None:
                    with contextlib.suppress(OSError):
                        os.unlink(self.tmp / f"{envelope.queue_id}{_MESSAGE}")
            return [_spool_error("flush", error) for _ in batch]
        return outcomes

    def _write_one(self, item: tuple[bytes, Envelope], synced: bool = True) -> SpoolError | None:
        message, envelope = item
        path = self.tmp / f"{envelope.queue_id}{_MESSAGE}"
        try:
            _write_file(path, envelope.to_json() + b"\n" + message, synced, reused=self._reuse_spare(path))
            return None
        except OSError as error:
            with contextlib.suppress(OSError):
                path.unlink()
            return _spool_error("write", error)

    def _reuse_spare(self, path: Path) -> bool:
        """Rename a spare to `path`: False when none is ready, or it is gone, and the file is to be created."""
        spare = self._spares.take()
        if spare is None:
            return False
        try:
            os.rename(spare, path)
        except OSError:
            return False
        return True

    def store_now(self, message: bytes, envelope: Envelope) -> None:
        """Synchronous store, for commands and delivery (DSNs) outside the SMTP path."""
        outcome = self._commit_batch([(message, envelope)])[0]
        if outcome is not None:
            raise outcome

    # -- reading and changing --------------------------------------------

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.queue.glob(f"*{_MESSAGE}") if valid_queue_id(p.stem))

    def _queued(self, queue_id: str, suffix: str) -> str:
        return f"{self._queue_prefix}{queue_id}{suffix}"

    def envelope(self, queue_id: str) -> Envelope:
        try:
            return self._state(queue_id, lambda: _read_line(self._queued(queue_id, _MESSAGE)))
        except FileNotFoundError:
            raise UnknownMessage(errno.ENOENT, f"no message {queue_id}") from None

    def message(self, queue_id: str) -> bytes:
        try:
            return _split(queue_id, _read_all(self._queued(queue_id, _MESSAGE), named=True))[1]
        except FileNotFoundError:
            raise UnknownMessage(errno.ENOENT, f"no message {queue_id}") from None

    def contents(self, lock: MessageLock) -> tuple[Envelope, bytes]:
        """The current state and the message bytes of a held message, its file read once."""
        accepted, message = _split(lock.queue_id, lock.read())
        return self._state(lock.queue_id, lambda: accepted), message

    def _state(self, queue_id: str, accepted: Callable[[], bytes]) -> Envelope:
        """The current state: the .json if an attempt changed it, else the envelope as accepted."""
        try:
            raw = _read_all(self._queued(queue_id, _STATE))
        except FileNotFoundError:
            raw = accepted()
        try:
            return Envelope.from_json(raw)
        except (ValueError, TypeError, KeyError) as error:
            raise SpoolError(errno.EINVAL, f"{queue_id}: unreadable envelope ({error})") from None

    def state_changed(self, queue_id: str) -> bool:
        """Whether the message's state was rewritten since it was stored (an attempt, a command)."""
        return os.access(self._queued(queue_id, _STATE), os.F_OK)

    def accepted_at(self, queue_id: str) -> float:
        """When the message was accepted: its .msg is written once, never changed."""
        return os.stat(self._queued(queue_id, _MESSAGE)).st_mtime

    def acquire(self, queue_id: str) -> MessageLock:
        """Hold the message exclusively, or raise MessageBusy / UnknownMessage at once."""
        if not valid_queue_id(queue_id):
            raise UnknownMessage(errno.EINVAL, f"not a queue id: {queue_id!r}")
        try:
            fd = os.open(self._queued(queue_id, _MESSAGE), os.O_RDONLY)
        except FileNotFoundError:
            raise UnknownMessage(errno.ENOENT, f"no message {queue_id}") from None
        lock = MessageLock(queue_id, fd)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise MessageBusy(errno.EBUSY, f"message {queue_id} is being delivered") from None
            if not _still_named(self._queued(queue_id, _MESSAGE), fd):  # removed by the holder we waited for
                raise UnknownMessage(errno.ENOENT, f"no message {queue_id}")
        except BaseException:
            lock.release()
            raise
        return lock

    @contextlib.contextmanager
    def locked(self, queue_id: str) -> Iterator[None]:
        lock = self.acquire(queue_id)
        try:
            yield
        finally:
            lock.release()

    def update(self, envelope: Envelope) -> None:
        """Replace the state of a message (caller holds its lock)."""
        tmp = self.tmp / f"{envelope.queue_id}{_STATE}.{secrets.token_hex(4)}"
        _write_file(tmp, envelope.to_json(), synced=True)
        os.replace(tmp, self._queued(envelope.queue_id, _STATE))
        self._spares.sync(self.queue)

    def remove(self, queue_id: str) -> None:
        """Remove a message (caller holds its lock): the message first, so a crash leaves a
        stray state file (removed at start), never a message with a stale state.

        No directory fsync: a removal lost in a crash costs a second delivery
        of a delivered message, never the loss of one.
        """
        for suffix in (_MESSAGE, _STATE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._queued(queue_id, suffix))

    def _retire(self, queue_id: str) -> str | None:
        """Remove a delivered message (caller holds its lock); its .msg, emptied, to keep as a
        spare once the lock is released (None: unlinked, or already gone)."""
        if self._spares.full():
            self.remove(queue_id)
            return None
        spare = f"{self._tmp_prefix}{queue_id}{_SPARE}"
        try:
            os.rename(self._queued(queue_id, _MESSAGE), spare)  # out of the queue at once, as by unlink
        except FileNotFoundError:
            return None
        # The message has left the queue: nothing below may report the removal failed.
        with contextlib.suppress(OSError):
            os.unlink(self._queued(queue_id, _STATE))  # a .json left alone is removed at start
        try:
            os.truncate(spare, 0)  # no message is kept once delivered
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(spare)
            return None
        return spare


class _Spares:
    """Emptied files of delivered messages (tmp/ID.spare), to be written again instead of created.

    A spare is handed out only once a queue/ fsync begun after its retirement
    has completed: before, a crash could bring back its old name in queue/
    naming the next message written into it (ext4 without a journal orders
    no metadata). Used by the commit trips and by store_now's threads.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._files: collections.deque[tuple[str, int]] = collections.deque()  # (path, syncs begun at retirement)
        self._lock = threading.Lock()
        self._begun = 0  # queue/ fsyncs begun
        self._done = 0  # the number of the latest completed

    def full(self) -> bool:
        return len(self._files) >= self.capacity

    def keep(self, path: str) -> None:
        with self._lock:
            self._files.append((path, self._begun))

    def take(self) -> str | None:
        with self._lock:
            if not self._files or self._files[0][1] >= self._done:
                return None
            return self._files.popleft()[0]

    def sync(self, queue: Path) -> None:
        """fsync queue/, counted: the spares retired before it started are then safe to reuse."""
        with self._lock:
            self._begun += 1
            number = self._begun
        fsync_dir(queue)
        with self._lock:
            self._done = max(self._done, number)


class MessageLock:
    """The open .msg holding the flock.

    Releasing it closes the last reference to a removed message, which is
    when the file system frees it: slow enough to keep off the event loop.
    """

    def __init__(self, queue_id: str, fd: int) -> None:
        self.queue_id = queue_id
        self._fd: int | None = fd

    def size(self) -> int:
        return os.fstat(self._held()).st_size

    def read(self) -> bytes:
        """The whole .msg, read through the descriptor that holds the lock (no second open)."""
        return _read_fd(self._held())

    def _held(self) -> int:
        if self._fd is None:
            raise SpoolError(errno.EBADF, "message lock already released")
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _release_quietly(lock: MessageLock) -> None:
    # Closing can only fail on a descriptor already gone; the lock goes with it either way.
    with contextlib.suppress(OSError):
        lock.release()


def _settle(futures: list[asyncio.Future[None]], outcomes: Sequence[OSError | None]) -> None:
    for done, outcome in zip(futures, outcomes):
        if done.done():
            continue
        if outcome is None:
            done.set_result(None)
        else:
            done.set_exception(outcome)


def _spool_error(step: str, error: OSError) -> SpoolError:
    return SpoolError(error.errno or errno.EIO, f"spool {step} failed: {error.strerror or error}")


def _split(queue_id: str, stored: bytes) -> tuple[bytes, bytes]:
    """A .msg's envelope line and message bytes."""
    line, newline, message = stored.partition(b"\n")
    if not newline:
        raise SpoolError(errno.EINVAL, f"{queue_id}: no envelope line")
    return line, message


def _write_file(path: Path, data: bytes, synced: bool, reused: bool = False) -> None:
    """Write a new file, or a spare renamed to `path` (`reused`)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC if reused else os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if synced:
            os.fsync(fd)
    finally:
        os.close(fd)


def _read_all(path: str, named: bool = False) -> bytes:
    """A whole file; with `named` (a .msg read without its lock), FileNotFoundError if the path
    no longer names the file once read (its file may hold another message by then)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = _read_fd(fd)
        if named:
            _check_named(path, fd)
        return data
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    """A whole file by raw reads: a buffered file object costs more system calls than the data."""
    size = os.fstat(fd).st_size  # a held .msg is not written meanwhile; an unheld one is checked after
    data = os.pread(fd, size, 0)
    while len(data) < size and (more := os.pread(fd, size - len(data), len(data))):
        data += more  # a short read, as a signal can cause
    return data


def _read_line(path: str) -> bytes:
    """The first line of a file (the envelope of a .msg), without reading the message after it:
    the scan for due messages reads it for every message never attempted."""
    fd = os.open(path, os.O_RDONLY)
    try:
        head, size = b"", 4096  # an envelope takes a few hundred bytes; many recipients take more
        while chunk := os.read(fd, size):
            head, size = head + chunk, 1 << 16
            line, newline, _ = head.partition(b"\n")
            if newline:
                head = line
                break
        _check_named(path, fd)  # read without the lock: the file may have been retired and reused
        return head
    finally:
        os.close(fd)


def _check_named(path: str, fd: int) -> None:
    if not _still_named(path, fd):
        raise FileNotFoundError(errno.ENOENT, "removed while read", path)


def _still_named(path: str, fd: int) -> bool:
    """Whether `path` still names the open file: not removed, nor retired as a spare and written again."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _locked(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
