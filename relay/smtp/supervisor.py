"""Several service processes sharing the listeners, the spool and the audit file.

One asyncio event loop is one core. With [service] processes = N > 1,
`relay serve` becomes a supervisor: it recovers the spool once, reserves
each listener's port, forks N workers (each a whole service: event loop,
verification pool, delivery) and forwards SIGTERM/SIGINT (graceful stop)
and SIGHUP (reload) to all of them.

Each worker binds its listeners itself with SO_REUSEPORT, so the kernel
spreads new connections across the workers. The supervisor's reserving
sockets are bound but never listen: they hold the port (port 0 is resolved
once, for all) and receive no connection.

Delivery stays exactly-once because every worker delivers a message only
under its spool lock (a flock on the .msg, see relay.queue.spool), which the
kernel releases when a worker dies: another worker's next scan takes the
message over. A worker that dies is started again.

The supervisor forks before it has an event loop or a thread, and keeps
the signals blocked to read them synchronously with sigwaitinfo.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import time
from dataclasses import replace
from typing import IO, Any

from ..audit.log import audit, configure
from ..queue.spool import Spool
from .config import ListenerConfig, ServiceConfig
from .service import serve
from .snapshots import SnapshotLoader

SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
RESTART_DELAY = 1.0  # at least this long between two starts of one slot: no fork loop on a start-up crash


class WorkerFailed(RuntimeError):
    """A service process exited before it was ready."""


def run(config: ServiceConfig, loader: SnapshotLoader, ready: IO[str] | None = None) -> None:
    """`relay serve`: one service process, or a supervisor of `config.processes` of them."""
    if config.processes == 1:
        asyncio.run(serve(config, loader, ready))
        return
    Supervisor(config, loader).run(ready or sys.stdout)


class Supervisor:
    def __init__(self, config: ServiceConfig, loader: SnapshotLoader) -> None:
        self.config = config
        self.loader = loader
        self.workers: dict[int, int] = {}  # pid -> slot
        self.started: dict[int, float] = {}  # slot -> when it was last started (monotonic)
        self.restarts: dict[int, float] = {}  # slot -> when it is due to start again
        self.reserved: list[socket.socket] = []
        self.supervisor = os.getpid()

    def run(self, ready: IO[str]) -> None:
        configure(self.config.audit.file)
        # The ports first: a second relay on the same ports must fail before touching the spool.
        self.reserved = [_reserve(listener) for listener in self.config.listeners]
        spool = Spool(self.config.queue.directory)
        removed = spool.prepare()  # once, before any worker commits into tmp/
        audit("spool-recovered", removed=removed, queued=len(spool.ids()))
        pid_file = self.config.pid_file
        listeners = tuple(replace(l, port=s.getsockname()[1]) for l, s in zip(self.config.listeners, self.reserved))
        self.config = replace(self.config, pid_file=None, listeners=listeners)
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            bound = self._start_all()
            if pid_file:
                pid_file.write_text(f"{os.getpid()}\n")  # for `relay reload`: SIGHUP reaches every worker
            audit("supervising", workers={str(slot): pid for pid, slot in self.workers.items()})
            ready.write(json.dumps({"ready": bound}) + "\n")
            ready.flush()
            self._loop()
        finally:
            self._stop_all()  # only workers left on an error: none may serve on without a supervisor
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            for sock in self.reserved:
                sock.close()
            if pid_file:
                pid_file.unlink(missing_ok=True)
        audit("stopped", workers=self.config.processes)

    def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        for pid in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            del self.workers[pid]

    def _start_all(self) -> dict[str, Any]:
        """Start every slot and wait for each one's ready line; their bound addresses."""
        pipes = [self._start(slot, announce=True) for slot in range(self.config.processes)]
        bound: dict[str, Any] = {}
        for slot, pipe in enumerate(pipes):
            with os.fdopen(pipe, "r") as lines:
                line = lines.readline()
            if not line:
                raise WorkerFailed(f"service process {slot} exited before it was ready")
            bound = json.loads(line)["ready"]  # the same addresses in every worker
        return bound

    def _start(self, slot: int, announce: bool = False) -> int:
        """Fork the worker of a slot; the read end of its ready pipe when `announce`, else -1."""
        read, write = os.pipe() if announce else (-1, -1)
        pid = os.fork()
        if pid == 0:
            if read >= 0:
                os.close(read)
            self._worker(slot, write)
        if write >= 0:
            os.close(write)
        self.workers[pid] = slot
        self.started[slot] = time.monotonic()
        return read

    def _worker(self, slot: int, write: int) -> None:
        """The child: a whole service on the shared ports; never returns."""
        code = 0
        try:
            # Closed only at exit: the supervisor reads its end of file as a failure, and stops
            # the workers, so the error must be written before.
            ready = os.fdopen(write, "w") if write >= 0 else open(os.devnull, "w")
            _stop_with_parent(self.supervisor)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            for sock in self.reserved:
                sock.close()
            asyncio.run(serve(self.config, self.loader, ready, worker=slot))
        except BaseException as error:  # the child must never return into the supervisor's code
            code = 1
            _report(slot, error)
        finally:
            # What a normal exit runs (multiprocessing's finalizers of the verification
            # pool among them); os._exit below skips it.
            atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(code)

    def _loop(self) -> None:
        stopping = False
        while self.workers or self.restarts:
            due = min(self.restarts.values(), default=None)
            if due is None:
                info = signal.sigwaitinfo(SIGNALS)
            else:
                info = signal.sigtimedwait(SIGNALS, max(due - time.monotonic(), 0.0))
            if info is None:
                self._restart_due()
            elif info.si_signo == signal.SIGCHLD:
                self._reap(stopping)
            elif info.si_signo == signal.SIGHUP:
                self._signal_all(signal.SIGHUP)
            else:
                stopping = True
                self.restarts.clear()
                self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for pid in self.workers:
            _signal(pid, signum)

    def _reap(self, stopping: bool) -> None:
        while self.workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            slot = self.workers.pop(pid, None)
            if slot is None:
                continue
            code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
            audit("worker-exited", worker=slot, pid=pid, exit=code, restart=not stopping)
            if not stopping:
                self.restarts[slot] = max(time.monotonic(), self.started[slot] + RESTART_DELAY)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot, due in list(self.restarts.items()):
            if due <= now:
                del self.restarts[slot]
                self._start(slot)
                pid = next(p for p, s in self.workers.items() if s == slot)
                audit("worker-started", worker=slot, pid=pid)


def _reserve(listener: ListenerConfig) -> socket.socket:
    """A bound, never listening socket holding the listener's port for the workers.

    The port is first bound without SO_REUSEPORT: that fails while anything
    listens there, where SO_REUSEPORT alone would quietly share the port with
    another relay started on it.
    """
    with _socket(listener, reuse_port=False) as probe:
        port = probe.getsockname()[1]
    return _socket(replace(listener, port=port), reuse_port=True)


def _socket(listener: ListenerConfig, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in listener.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio: past TIME_WAIT
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio binds the workers'
        sock.bind((listener.address, listener.port))
    except OSError:
        sock.close()
        raise
    return sock


def _stop_with_parent(supervisor: int) -> None:
    """SIGTERM when the supervisor dies (even by SIGKILL): no worker serves on unsupervised (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor:  # it died before the request took effect
        raise WorkerFailed("the supervisor exited")


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # exited meanwhile: reaped at the next SIGCHLD


def _report(slot: int, error: BaseException) -> None:
    problems = getattr(error, "problems", None)  # a trust directory that cannot be loaded
    for problem in problems or [f"{type(error).__name__}: {error}"]:
        print(f"error: service process {slot}: {problem}", file=sys.stderr)
