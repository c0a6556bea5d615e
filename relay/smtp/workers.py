"""A small pool of worker processes fed over pipes that the event loop reads itself.

Each worker is a `spawn`ed process (never a fork of a running event loop)
with two pipes: tasks in, answers out. The service side writes a task
without blocking and reads answers from `add_reader` callbacks, so there is
no manager or feeder thread and no wake-up across threads: one write and
one read per task. A task is a frame holding a small pickled header and the
message bytes as they are, so the message itself is never pickled.

A worker that dies (killed, out of memory) fails only the tasks it held,
with WorkerLost, and a fresh worker takes its place. So does a worker that
holds a task longer than the pool's task_timeout: it is killed, so that no
input, however crafted, can keep a worker (and its messages) forever.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import math
import multiprocessing
import os
import pickle
import signal
import struct
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable

from .deadline import Deadline

# task id, length of the pickled part, length of the raw part
_FRAME = struct.Struct("!QQQ")
_READ_SIZE = 1 << 16
# A worker that dies before answering anything (it cannot start, say) is
# replaced after this pause, not at once: no tight loop of doomed spawns.
RESTART_DELAY = 1.0

Work = Callable[[Any, bytes], Any]  # what a worker does with one task's pickled part and raw bytes
WorkFactory = Callable[[], Work]  # picklable; called once in each worker


class WorkerLost(Exception):
    """The worker holding the task died before answering: a temporary failure."""


def frame(task_id: int, header: bytes, raw: bytes = b"") -> list[bytes]:
    return [_FRAME.pack(task_id, len(header), len(raw)), header, raw]


# -- the worker process ------------------------------------------------------


def _worker_main(factory: WorkFactory, tasks: Connection, answers: Connection) -> None:
    # Ctrl-C reaches the whole process group; the service decides when workers stop (EOF on tasks).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    work = factory()
    reader = io.open(tasks.fileno(), "rb", buffering=_READ_SIZE, closefd=False)
    out = answers.fileno()
    while True:
        head = reader.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return  # the service closed the pipe: stop
        task_id, header_len, raw_len = _FRAME.unpack(head)
        header, raw = reader.read(header_len), reader.read(raw_len)
        try:
            _write_all(out, b"".join(frame(task_id, _answer(work, header, raw))))
        except BrokenPipeError:
            return  # the service stopped reading: it is closing the pool


def _answer(work: Work, header: bytes, raw: bytes) -> bytes:
    try:
        return pickle.dumps((True, work(pickle.loads(header), raw)), pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # reaches the caller as its error, the worker carries on
        try:
            return pickle.dumps((False, error), pickle.HIGHEST_PROTOCOL)
        except Exception:
            return pickle.dumps((False, RuntimeError(f"{type(error).__name__}: {error}")))


def _append(buffer: bytearray, parts: list[bytes]) -> None:
    for part in parts:
        buffer += part


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- the service side ----------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing.context.SpawnProcess
    tasks: int  # fd: the service writes here (non-blocking)
    answers: int  # fd: the service reads here (non-blocking)
    # task id -> its future and when its time is up (loop time), in the order sent
    held: dict[int, tuple[asyncio.Future[Any], float]] = field(default_factory=dict)
    # On the end of the oldest held task (with a task timeout): the worker
    # answers in order, so that is the one a stuck worker is caught by.
    deadline: Deadline | None = None
    unread: bytearray = field(default_factory=bytearray)
    unwritten: bytearray = field(default_factory=bytearray)
    answered: int = 0


class WorkerPool:
    """`count` worker processes; each holds at most `depth` tasks, the rest wait here.

    Two tasks per worker keep it busy while its last answer travels back,
    and bound what a dying worker takes down with it.
    """

    def __init__(self, factory: WorkFactory, count: int, depth: int = 2, task_timeout: float | None = None) -> None:
        self._factory, self._depth, self._task_timeout = factory, depth, task_timeout
        self._context = multiprocessing.get_context("spawn")
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count()
        self._waiting: deque[tuple[int, list[bytes], asyncio.Future[Any]]] = deque()
        self._workers: list[_Worker] = []
        self._closed = False
        for _ in range(count):
            self._start_worker()

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def submit(self, header: Any, raw: bytes) -> asyncio.Future[Any]:
        """The worker's answer to (header, raw); WorkerLost if its worker dies first."""
        future: asyncio.Future[Any] = self._loop.create_future()
        if self._closed:
            future.set_exception(WorkerLost("the pool is closed"))
            return future
        task_id = next(self._ids)
        self._waiting.append((task_id, frame(task_id, pickle.dumps(header, pickle.HIGHEST_PROTOCOL), raw), future))
        self._dispatch()
        return future

    def close(self, timeout: float = 5.0) -> None:
        """Workers exit once they see their pipes closed; what was not answered fails with WorkerLost."""
        self._closed = True
        workers, self._workers = self._workers, []
        for worker in workers:
            self._detach(worker, WorkerLost("the pool is closed"))
        for _, _, future in self._waiting:
            if not future.done():
                future.set_exception(WorkerLost("the pool is closed"))
        self._waiting.clear()
        for worker in workers:
            worker.process.join(timeout)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()

    # -- workers ---------------------------------------------------------

    def _start_worker(self) -> None:
        task_read, task_write = self._context.Pipe(duplex=False)
        answer_read, answer_write = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main, args=(self._factory, task_read, answer_write), name="relay-verify", daemon=True
        )
        process.start()
        task_read.close()  # the worker's ends: only its copies may stay open, or its death would go unseen
        answer_write.close()
        worker = _Worker(process, os.dup(task_write.fileno()), os.dup(answer_read.fileno()))
        if self._task_timeout is not None:
            worker.deadline = Deadline(self._loop, lambda: self._overdue(worker))
        task_write.close()
        answer_read.close()
        os.set_blocking(worker.tasks, False)
        os.set_blocking(worker.answers, False)
        self._loop.add_reader(worker.answers, self._readable, worker)
        self._workers.append(worker)

    def _lost(self, worker: _Worker, why: str = "died") -> None:
        if worker not in self._workers:
            return
        self._workers.remove(worker)
        self._detach(worker, WorkerLost(f"verification worker {worker.process.pid} {why}"))
        worker.process.kill()  # already gone or going; reap it
        worker.process.join()
        if worker.answered:
            self._replace()
        else:
            self._loop.call_later(RESTART_DELAY, self._replace)

    def _replace(self) -> None:
        if not self._closed:
            self._start_worker()
            self._dispatch()

    def _detach(self, worker: _Worker, error: Exception) -> None:
        self._loop.remove_reader(worker.answers)
        self._loop.remove_writer(worker.tasks)
        os.close(worker.tasks)
        os.close(worker.answers)
        if worker.deadline is not None:
            worker.deadline.cancel()
        for future, _ in worker.held.values():
            if not future.done():
                future.set_exception(error)
        worker.held.clear()

    # -- tasks out -------------------------------------------------------

    def _dispatch(self) -> None:
        while self._waiting:
            worker = min(self._workers, key=lambda w: len(w.held), default=None)
            if worker is None or len(worker.held) >= self._depth:
                return
            task_id, parts, future = self._waiting.popleft()
            if future.done():  # cancelled while waiting
                continue
            timeout = self._task_timeout
            worker.held[task_id] = (future, self._loop.time() + timeout if timeout is not None else math.inf)
            self._watch_oldest(worker)
            self._send(worker, parts)

    def _watch_oldest(self, worker: _Worker) -> None:
        """The worker's deadline on the end of its oldest task, or none while it holds none."""
        if worker.deadline is None:
            return  # no task timeout
        oldest = next(iter(worker.held.values()), None)
        if oldest is None:
            worker.deadline.clear()
        else:
            worker.deadline.set_at(oldest[1])

    def _overdue(self, worker: _Worker) -> None:
        # The deadline follows the oldest task still held: that one is overdue.
        self._lost(worker, f"was stopped: a task took longer than {self._task_timeout:g} s")

    def _send(self, worker: _Worker, parts: list[bytes]) -> None:
        if worker.unwritten:
            _append(worker.unwritten, parts)
            return
        try:
            written = os.writev(worker.tasks, parts)
        except BlockingIOError:
            written = 0
        except OSError:  # the worker is gone; its answer pipe says so too
            return self._lost(worker)
        if written < sum(len(p) for p in parts):
            _append(worker.unwritten, parts)  # one copy of the message, not a join and a slice
            del worker.unwritten[:written]
            self._loop.add_writer(worker.tasks, self._writable, worker)

    def _writable(self, worker: _Worker) -> None:
        try:
            written = os.write(worker.tasks, worker.unwritten)
        except BlockingIOError:
            return
        except OSError:
            return self._lost(worker)
        del worker.unwritten[:written]
        if not worker.unwritten:
            self._loop.remove_writer(worker.tasks)

    # -- answers in ------------------------------------------------------

    def _readable(self, worker: _Worker) -> None:
        try:
            chunk = os.read(worker.answers, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            return self._lost(worker)
        worker.unread += chunk
        self._answers(worker)

    def _answers(self, worker: _Worker) -> None:
        buffer = worker.unread
        while len(buffer) >= _FRAME.size:
            task_id, header_len, _ = _FRAME.unpack_from(buffer)
            end = _FRAME.size + header_len
            if len(buffer) < end:
                break
            ok, value = pickle.loads(bytes(buffer[_FRAME.size : end]))
            del buffer[:end]
            worker.answered += 1
            future, _ = worker.held.pop(task_id, (None, 0.0))
            self._watch_oldest(worker)
            if future is None or future.done():  # cancelled meanwhile
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self._dispatch()
