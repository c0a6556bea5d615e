"""The running relay: listeners, verification pool, spool, delivery and signals.

SIGTERM/SIGINT: stop listening, close idle sessions with 421, let messages
being judged finish (bounded by a grace period), stop delivery; the spool is
consistent at every instant anyway. SIGHUP: reload the users file and the
trust snapshot and swap them atomically; on error the previous ones stay and
the error is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import ssl
import sys
from typing import Any, Callable

from ..audit.log import audit, configure
from ..core.snapshot import Snapshot
from ..metrics.logs import configure_json_logging
from ..metrics.observe import Observability, start_observability
from ..metrics.registry import Metrics
from ..metrics.spoolstate import queue_state
from ..queue.delivery import Delivery
from ..queue.spool import Spool
from ..trust.holder import SnapshotHolder
from .config import ListenerConfig, ListenerKind, ListenerTls, ServiceConfig
from .crypto_steps import crypto_steps
from .credentials import Credentials, CredentialsError, load_credentials
from .handler import RelayHandler, Services
from .peer import tls_anchors
from .proxy import ProxyPolicy
from .session import ConnectionLimiter, RelaySMTP
from .snapshots import SnapshotLoader
from .tls import server_context
from .verifier import Verifier

SHUTDOWN_GRACE = 30.0  # seconds left to messages being judged when stopping


class Service:
    """The parts of a running relay, wired at start() and taken down by stop()."""

    def __init__(self, config: ServiceConfig, loader: SnapshotLoader, worker: int | None = None) -> None:
        self.config = config
        self.loader = loader
        # One of several processes (relay.smtp.supervisor): the supervisor recovered
        # the spool before any of them started, and each listener's port is shared.
        self.worker = worker
        self.servers: list[asyncio.Server] = []
        self.sessions: set[RelaySMTP] = set()  # open SMTP sessions, for shutdown
        self.bound: dict[str, tuple[str, int]] = {}  # listener (and metrics) name -> address
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}  # per listener and snapshot version
        self.observability: Observability | None = None

    async def start(self, before_listening: Callable[[], None] = lambda: None) -> None:
        self.holder = SnapshotHolder(self.loader)
        self.spool = Spool(self.config.queue.directory, self.config.queue.commit_wait, self.config.queue.flush)
        if self.worker is None:  # another process could be committing into tmp/ meanwhile
            removed = self.spool.prepare()
            audit("spool-recovered", removed=removed, queued=len(self.spool.ids()))
        self.credentials: Credentials = load_credentials(self.config.users)
        self.metrics: Metrics
        if self.config.metrics:
            host, port = self.config.metrics
            self.observability = await start_observability(self.spool, lambda: self.snapshot, host, port)
            self.metrics = self.observability.metrics
            self.bound["metrics"] = self.observability.address
        else:
            self.metrics = Metrics(lambda: self.snapshot, lambda: queue_state(self.spool))
        self.crypto = await asyncio.to_thread(crypto_steps, self.config, self.spool, lambda: self.snapshot)
        limits = self.config.limits
        self.verifier = Verifier(self.loader, self.config.verify_workers, limits.message, limits.max_received)
        self.delivery = Delivery(
            self.spool,
            lambda: self.snapshot,
            self.config.delivery,
            self.config.hostname,
            self.config.queue.scan_interval,
            self.metrics,
            acknowledger=self.crypto.acknowledgements,
        )
        services = Services(self.config, lambda: self.snapshot, self.verifier, self.spool, self.delivery.queued, self.metrics)
        services.inbound, services.outbound = self.crypto.inbound, self.crypto.outbound
        services.dkim_in = self.crypto.dkim_in
        self.limiter = ConnectionLimiter(self.config.limits.max_connections, self.config.limits.max_connections_per_ip)
        before_listening()
        for listener in self.config.listeners:
            await self._listen(listener, RelayHandler(listener, services))
        self.delivery_task = asyncio.create_task(self.delivery.run())
        audit("started", listeners={k: f"{h}:{p}" for k, (h, p) in self.bound.items()}, snapshot=self.snapshot.version)

    @property
    def snapshot(self) -> Snapshot:
        return self.holder.current

    # -- listeners -------------------------------------------------------

    async def _listen(self, listener: ListenerConfig, handler: RelayHandler) -> None:
        loop = asyncio.get_running_loop()
        implicit = listener.tls is ListenerTls.IMPLICIT
        base_context = self._context(listener) if implicit else None
        if base_context is not None and listener.kind is ListenerKind.MX:
            # The socket's context is fixed; switch to the current snapshot's anchors per handshake.
            base_context.sni_callback = lambda obj, _name, _ctx: setattr(obj, "context", self._context(listener))

        def factory() -> RelaySMTP:
            return self._protocol(listener, handler)

        server = await loop.create_server(
            factory, host=listener.address, port=listener.port, ssl=base_context, reuse_port=self.worker is not None
        )
        self.servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        self.bound[listener.name] = (host, port)

    def _context(self, listener: ListenerConfig) -> ssl.SSLContext | None:
        if listener.tls is ListenerTls.NONE:
            return None
        version = self.snapshot.version if listener.kind is ListenerKind.MX else ""
        key = (listener.name, version)
        if key not in self._contexts:
            assert listener.certificate and listener.key
            anchors = tls_anchors(self.snapshot) if listener.kind is ListenerKind.MX else ()
            self._contexts = {k: v for k, v in self._contexts.items() if k[0] != listener.name}
            self._contexts[key] = server_context(listener.certificate, listener.key, anchors)
        return self._contexts[key]

    def _protocol(self, listener: ListenerConfig, handler: RelayHandler) -> RelaySMTP:
        limits = self.config.limits
        submission = listener.kind is ListenerKind.SUBMISSION
        starttls = listener.tls is ListenerTls.STARTTLS
        return RelaySMTP(
            handler,
            metrics=self.metrics,
            limiter=self.limiter,
            credentials=self.credentials if submission else None,
            session_timeout=limits.session_timeout,
            line_length_limit=limits.message.max_line_bytes + 1,  # + a dot-stuffing dot
            sessions=self.sessions,
            proxy=ProxyPolicy(listener.proxy_from) if listener.proxy_protocol else None,
            hostname=self.config.hostname,
            ident="relay",
            tls_context=self._context(listener) if starttls else None,
            require_starttls=starttls,
            auth_required=submission,
            # On an implicit-TLS listener every byte is already encrypted.
            auth_require_tls=listener.tls is not ListenerTls.IMPLICIT,
            auth_exclude_mechanism=[] if submission else ["PLAIN", "LOGIN"],
            data_size_limit=limits.message.max_message_bytes,
            timeout=limits.command_timeout,
        )

    # -- signals ---------------------------------------------------------

    async def reload(self) -> None:
        try:
            self.credentials = await asyncio.to_thread(load_credentials, self.config.users)
        except CredentialsError as error:  # keep the users in force
            audit("reload-failed", error="CredentialsError", detail=str(error)[:500])
        try:
            result = await self.holder.reload_async()
        except Exception as error:  # keep serving with the trust in force
            audit("reload-failed", error=type(error).__name__, detail=str(error)[:500])
            return
        if result.problems:
            audit("reload-failed", error="ConfigError", problems=list(result.problems))
        elif result.swapped:
            audit("reloaded", snapshot=result.snapshot.version)
        else:
            audit("reload-unchanged", snapshot=result.snapshot.version)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        audit("stopping", sessions=len(self.sessions))
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE
        while self.sessions and asyncio.get_running_loop().time() < deadline:
            for session in list(self.sessions):
                session.close_idle()
            await asyncio.sleep(0.05)  # poll sessions finishing their DATA; not synchronisation of a test
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        await self.delivery.stop()
        self.delivery_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.delivery_task
        await self.spool.drain()  # removals of messages just delivered
        self.verifier.close()
        self.crypto.close()
        if self.observability is not None:
            await self.observability.close()
        audit("stopped")


def set_aside_long_lived() -> None:
    """Everything alive now out of the cyclic collector's sight (gc.freeze), once, at start.

    What start-up builds (modules, the trust snapshot, TLS contexts) lives as
    long as the process; set aside, a full collection scans only what serving
    makes (measured: 40 -> 3 ms for the one full collection over 2,000
    messages). Called before the listeners open, so that no session is set
    aside. Reference counting still frees what is set aside: a snapshot a
    reload replaces holds no reference cycle, and goes (tests/trust/test_trust_reload.py).
    """
    gc.collect()
    gc.freeze()


async def serve(config: ServiceConfig, loader: SnapshotLoader, ready: Any = None, worker: int | None = None) -> None:
    """Run until SIGTERM/SIGINT; writes one JSON ready line with the bound addresses to `ready`.

    `worker`: this process's slot when relay.smtp.supervisor runs several.
    """
    configure(config.audit.file, worker)
    configure_json_logging(level=logging.WARNING)  # library records (asyncio, aiosmtpd) as JSON on stdout
    # aiosmtpd's own log echoes client commands; the audit trail is the record.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    service = Service(config, loader, worker)
    await service.start(before_listening=set_aside_long_lived)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(service.reload()))
    if config.pid_file:
        config.pid_file.write_text(f"{os.getpid()}\n")  # for `relay reload`
    out = ready or sys.stdout
    out.write(json.dumps({"ready": {k: [h, p] for k, (h, p) in service.bound.items()}}) + "\n")
    out.flush()
    await stopped.wait()
    await service.stop()
    if config.pid_file:
        config.pid_file.unlink(missing_ok=True)
