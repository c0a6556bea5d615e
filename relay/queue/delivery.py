"""Delivery of spooled messages to their next hops, with retries, back-off and DSNs.

Each message is delivered under its spool lock; recipients are grouped by
the next hop of their route in the current snapshot. Per destination a
semaphore caps concurrent sessions and idle sessions are reused. A 4xx or a
network failure defers the recipient (exponential back-off); a 5xx fails it;
a message whose recipients are all settled, or which has waited longer than
`give_up_after`, leaves the queue, with a DSN to its sender for failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import ipaddress
import re
import time
from dataclasses import dataclass, replace
from typing import Callable, Protocol, Sequence

from ..audit.log import audit
from ..core.bundle import Bundle
from ..core.snapshot import NextHop, Snapshot, TlsMode
from ..metrics.registry import Metrics
from ..smtp.config import DeliveryConfig
from ..smtp.decide import header_block
from ..smtp.tls import client_context
from .dsn import build_dsn, needs_dsn
from .next_hop_cert import next_hop_refusal
from .reply_reader import Reply
from .smtp_client import Session, SessionError, StaleSession, TransactionReplies
from .spool import Envelope, MessageBusy, MessageLock, RecipientState, Spool, SpoolError, Stored, UnknownMessage, new_queue_id

DELIVERED, FAILED, DEFERRED = "delivered", "failed", "pending"


class Acknowledger(Protocol):
    """The acknowledgements (relay.queue.mdn) that delivered recipients owe."""

    def may_owe(self, delivered: Sequence[str]) -> bool:
        """Whether any of these recipients may owe one: a look at the directory, no I/O."""
        ...

    def after_attempt(self, envelope: Envelope, results: dict[str, tuple[str, str]], message: bytes, now: float) -> list[str]:
        """Spool those due after an attempt (blocking: fsyncs); their queue ids."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float
    maximum: float

    def delay(self, attempts: int) -> float:
        """Wait after the given number of failed attempts: first, doubling, capped."""
        return min(self.first * 2 ** max(attempts - 1, 0), self.maximum)


# Above this, delivery reads a message in a thread (a 50 MB message takes
# milliseconds even from the page cache); below, on the event loop.
READ_ON_LOOP_BYTES = 1 << 20

# An address goes verbatim into a command line, so it must be a plain RFC 5321
# mailbox: atext and dots (doubled or edge dots pass, as other MTAs let them)
# at a domain or an address literal. Nothing that could end the line or the
# path (CR/LF injection), and nothing a parser could read as another mailbox
# (a colon, a bracket in the local part).
_SAFE_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]{1,254}"
    r"@(?:[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,126}|\[[A-Za-z0-9.:\-]{1,251}\])"
)


def safe_address(address: str) -> bool:
    return _SAFE_ADDRESS.fullmatch(address) is not None


class NextHopRefused(Exception):
    """The next hop's certificate is not acceptable (pinned DN, path, revocation)."""


# As Postfix's smtp_connection_reuse_time_limit: an idle session older than this is not
# reused, so a next hop's certificate revoked or expired meanwhile is judged again.
REUSE_TIME_LIMIT = 300.0


@dataclass(slots=True)
class Pooled:
    """A session with what its next hop's certificate was judged against, and when it opened."""

    session: Session
    bundle: Bundle | None
    opened: float


class Destinations:
    """Per next hop: a cap on concurrent sessions and a stack of idle ones to reuse."""

    def __init__(self, per_destination: int) -> None:
        self.per_destination = per_destination
        self.limits: dict[NextHop, asyncio.Semaphore] = {}
        self.idle: dict[NextHop, list[Pooled]] = {}

    def limit(self, hop: NextHop) -> asyncio.Semaphore:
        return self.limits.setdefault(hop, asyncio.Semaphore(self.per_destination))

    def reuse(self, hop: NextHop, bundle: Bundle | None, now: float) -> Pooled | None:
        """An idle session still connected, as far as the event loop has seen, younger than
        REUSE_TIME_LIMIT and judged against the bundle in force (a reload makes new ones).

        Sessions are kept only after a completed transaction (a reply to the
        end of data, or RSET when no message was sent), which leaves them in
        the initial state (RFC 5321 4.1.1.4, 3.3): no RSET is needed.
        """
        stack = self.idle.get(hop, [])
        while stack:
            pooled = stack.pop()
            if pooled.session.is_connected and pooled.bundle is bundle and now - pooled.opened < REUSE_TIME_LIMIT:
                return pooled
            pooled.session.close()
        return None

    def keep(self, hop: NextHop, pooled: Pooled) -> None:
        stack = self.idle.setdefault(hop, [])
        if pooled.session.is_connected and len(stack) < self.per_destination:
            stack.append(pooled)
        else:
            pooled.session.close()

    async def close(self) -> None:
        for stack in self.idle.values():
            for pooled in stack:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pooled.session.quit(), 2)  # closes the session whatever happens
        self.idle.clear()


class Delivery:
    def __init__(
        self,
        spool: Spool,
        snapshot: Callable[[], Snapshot],
        config: DeliveryConfig,
        hostname: str,
        scan_interval: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        acknowledger: Acknowledger | None = None,
    ) -> None:
        self.acknowledger = acknowledger
        self.metrics = metrics
        self.spool = spool
        self.snapshot = snapshot
        self.config = config
        self.hostname = hostname
        self.scan_interval = scan_interval
        self.clock = clock
        self.backoff = Backoff(config.first_retry, config.max_retry_interval)
        self.destinations = Destinations(config.max_per_destination)
        self.inflight: dict[str, asyncio.Task[None]] = {}
        # Due messages that found no room, oldest first: each delivery that
        # finishes starts the next one, without reading the spool again.
        self.waiting: dict[str, None] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    # -- scheduling ----------------------------------------------------------

    def queued(self, queue_id: str, stored: Stored | None = None) -> None:
        """A message just entered the spool: try it now, else once a delivery finishes.

        `stored`: its envelope and bytes as just written, which a delivery
        started at once uses instead of reading them back (a waiting one
        keeps only the id).
        """
        self._start_or_wait(queue_id, stored)

    async def run(self) -> None:
        while not self._stopping:
            # Reading every state file is I/O: done in a thread, started here.
            for queue_id in await asyncio.to_thread(self._due, self.clock()):
                self._start_or_wait(queue_id)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.scan_interval)
            self._wake.clear()

    def _due(self, now: float) -> list[str]:
        due = []
        for queue_id in self.spool.ids():
            if queue_id in self.inflight or queue_id in self.waiting:
                continue
            try:
                if self.spool.envelope(queue_id).next_attempt <= now:
                    due.append(queue_id)
            except SpoolError:
                continue  # removed meanwhile, or being rewritten
        return due

    def _start_or_wait(self, queue_id: str, stored: Stored | None = None) -> None:
        if not self._start(queue_id, stored) and not self._stopping and queue_id not in self.inflight:
            self.waiting[queue_id] = None

    def _start(self, queue_id: str, stored: Stored | None = None) -> bool:
        if self._stopping or queue_id in self.inflight or len(self.inflight) >= self.config.max_concurrent:
            return False
        self.waiting.pop(queue_id, None)
        task = asyncio.create_task(self._deliver_logged(queue_id, stored))
        self.inflight[queue_id] = task
        task.add_done_callback(lambda _t: self._finished(queue_id))
        return True

    def _finished(self, queue_id: str) -> None:
        self.inflight.pop(queue_id, None)
        if self.waiting:
            self._start(next(iter(self.waiting)))  # the room just freed

    async def stop(self) -> None:
        self._stopping = True
        self.waiting.clear()
        self._wake.set()
        for task in list(self.inflight.values()):
            task.cancel()
        await asyncio.gather(*self.inflight.values(), return_exceptions=True)
        await self.destinations.close()

    # -- one message ---------------------------------------------------------

    async def _deliver_logged(self, queue_id: str, stored: Stored | None) -> None:
        try:
            await self.deliver(queue_id, stored)
        except (MessageBusy, UnknownMessage):
            pass  # the operator command holds or removed it
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the message stays queued for the next scan
            audit("delivery-error", queue_id=queue_id, error=type(error).__name__, detail=str(error)[:300])

    async def deliver(self, queue_id: str, stored: Stored | None = None) -> None:
        lock = self.spool.acquire(queue_id)
        try:
            envelope, message = await self._contents(lock, stored)
            results: dict[str, tuple[str, str]] | None = None  # None: no attempt (not due, or settled)
            if envelope.pending and envelope.next_attempt <= self.clock():
                results = {}
                for hop, recipients in _by_hop(self.snapshot(), envelope.pending).items():
                    results.update(await self._send(hop, envelope, recipients, message))
            settled = self._settled_quietly(envelope, results) if results is not None else None
        except BaseException:
            await asyncio.shield(asyncio.to_thread(lock.release))
            raise
        if settled is not None:
            # Nothing to write: the removal joins the spool's next batch off the event loop.
            self.spool.discard(lock).add_done_callback(functools.partial(_removal_done, settled))
            return
        # fsyncs, file removal and the release of the lock, in one hop off the event
        # loop (which serves the SMTP sessions); shielded, so a stop cannot leave the
        # attempt half recorded.
        queued = await asyncio.shield(asyncio.to_thread(self._conclude, lock, envelope, message, results))
        for queued_id in queued:
            self.queued(queued_id)

    async def _contents(self, lock: MessageLock, stored: Stored | None) -> Stored:
        """The state and bytes of a held message: as just stored, while no attempt or command
        has changed its state (the .msg itself is written once), else read from the spool."""
        if stored is not None and not self.spool.state_changed(lock.queue_id):
            return stored
        if lock.size() > READ_ON_LOOP_BYTES:  # reading it would hold up every SMTP session
            return await asyncio.to_thread(self.spool.contents, lock)
        return self.spool.contents(lock)  # from the page cache in microseconds: cheaper than a thread hand-off

    def _settled_quietly(self, envelope: Envelope, results: dict[str, tuple[str, str]]) -> Envelope | None:
        """The envelope after this attempt when the message only leaves the queue: delivered to
        every recipient, and those of this attempt owe no acknowledgement; else None."""
        settled = envelope.with_results(results)
        if any(r.status != DELIVERED for r in settled.recipients):
            return None
        if self.acknowledger is not None and self.acknowledger.may_owe(list(results)):
            return None
        return settled

    def _conclude(
        self, lock: MessageLock, envelope: Envelope, message: bytes, results: dict[str, tuple[str, str]] | None
    ) -> list[str]:
        """Record an attempt, or remove a message settled by a run that stopped before removing it,
        then release the lock; the ids of the acknowledgements and DSN queued meanwhile."""
        try:
            if results is None:
                dsn_id = None if envelope.pending else finish(self.spool, envelope, self.hostname, self.clock(), message)
                return [dsn_id] if dsn_id else []
            acknowledged = self.acknowledger.after_attempt(envelope, results, message, self.clock()) if self.acknowledger else []
            dsn_id = self._settle(replace(envelope.with_results(results), attempts=envelope.attempts + 1), message)
            return [*acknowledged, *([dsn_id] if dsn_id else [])]
        finally:
            lock.release()

    def _settle(self, envelope: Envelope, message: bytes) -> str | None:
        """Record the attempt: reschedule, or remove (and return the id of a DSN queued for failures)."""
        now = self.clock()
        if envelope.pending and now - envelope.received_at >= self.config.give_up_after:
            expired = {r.address: (FAILED, f"4.4.7 delivery time expired; last error: {r.reply}") for r in envelope.pending}
            envelope = envelope.with_results(expired)
        if envelope.pending:
            delay = self.backoff.delay(envelope.attempts)
            self.spool.update(replace(envelope, next_attempt=now + delay))
            audit("deferred", queue_id=envelope.queue_id, message_id=envelope.message_id, attempts=envelope.attempts, retry_in=delay)
            return None
        return finish(self.spool, envelope, self.hostname, now, message)

    # -- one SMTP transaction ------------------------------------------------

    async def _send(
        self, hop: NextHop | None, envelope: Envelope, recipients: list[str], message: bytes
    ) -> dict[str, tuple[str, str]]:
        unusable = {r: (FAILED, "5.1.3 unusable recipient address") for r in recipients if not safe_address(r)}
        recipients = [r for r in recipients if r not in unusable]
        refused = _unusable(hop, envelope.mail_from) if recipients else None
        if refused is not None:
            return {**unusable, **{r: refused for r in recipients}}
        if not recipients or hop is None:
            return unusable
        async with self.destinations.limit(hop):
            results = await self._attempt(hop, envelope.mail_from, recipients, message, envelope.crlf_only)
        self._audit_attempt(envelope, hop, results)
        return {**unusable, **results}

    async def _attempt(
        self, hop: NextHop, sender: str, recipients: list[str], message: bytes, crlf_only: bool
    ) -> dict[str, tuple[str, str]]:
        """One transaction, on an idle session if there is one; a session the next hop closed
        while idle costs a new connection, not a deferral."""
        try:
            bundle = self._verify_bundle(hop)
        except ValueError as error:
            return _all(recipients, (DEFERRED, f"4.7.5 {hop}: {error}"))
        now = self.clock()
        pooled = self.destinations.reuse(hop, bundle, now)
        outcome = await _transaction(pooled.session, sender, recipients, message, reused=True, crlf_only=crlf_only) if pooled else None
        if outcome is None:
            try:
                pooled = Pooled(await self._connect(hop, bundle), bundle, now)
            except NextHopRefused as refused:
                return _all(recipients, (DEFERRED, f"4.7.5 {hop}: {refused}"))
            except Exception as error:  # noqa: BLE001 - whatever it is, this hop waits; other hops go on
                return _all(recipients, (DEFERRED, f"4.4.1 cannot reach {hop}: {_error_text(error)}"))
            outcome = await _transaction(pooled.session, sender, recipients, message, reused=False, crlf_only=crlf_only)
            assert outcome is not None  # only a reused session is reported gone
        results, healthy = outcome
        if healthy:
            self.destinations.keep(hop, pooled)
        else:
            pooled.session.close()
        return results

    def _verify_bundle(self, hop: NextHop) -> Bundle | None:
        """The bundle the next hop's certificate is judged against; None: the system store, or no TLS."""
        if hop.tls is TlsMode.NONE or not hop.verify_bundle:
            return None
        bundle = self.snapshot().bundles.get(hop.verify_bundle)
        if bundle is None:
            raise ValueError(f"verify_bundle {hop.verify_bundle} is not loaded")
        return bundle

    async def _connect(self, hop: NextHop, bundle: Bundle | None) -> Session:
        context = None
        if hop.tls is not TlsMode.NONE:
            anchors = bundle.anchors + bundle.intermediates if bundle is not None else None
            context = client_context(anchors, check_hostname=hop.verify_dn is None)
        now = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

        def judge_peer(certificate: bytes | None) -> None:
            refusal = next_hop_refusal(certificate, hop, bundle, now)
            if refusal is not None:
                raise NextHopRefused(refusal)

        return await Session.open(
            hop.host,
            hop.port,
            helo_name=self.hostname,
            connect_timeout=self.config.connect_timeout,
            command_timeout=self.config.command_timeout,
            tls=context,
            starttls=hop.tls is TlsMode.STARTTLS,
            check_peer=judge_peer if context is not None else None,
        )

    def _audit_attempt(self, envelope: Envelope, hop: NextHop, results: dict[str, tuple[str, str]]) -> None:
        for address, (status, why) in results.items():
            self.metrics.delivery_attempt(status)
            audit("attempt", queue_id=envelope.queue_id, message_id=envelope.message_id, rcpt=address, hop=str(hop), status=status, reply=why)


async def _transaction(
    session: Session, sender: str, recipients: list[str], message: bytes, *, reused: bool, crlf_only: bool = False
) -> tuple[dict[str, tuple[str, str]], bool] | None:
    """(per-recipient results, whether the session can be reused); None when a reused session
    was gone before the next hop answered (it closed it while idle): nothing was sent.
    crlf_only: the message's line breaks are known to be CRLF (Envelope.crlf_only)."""
    # The paths go verbatim (checked by safe_address), never re-parsed.
    try:
        replies = await session.transaction(
            sender.encode("ascii"), [r.encode("ascii") for r in recipients], message, crlf_only=crlf_only
        )
    except (SessionError, OSError) as error:
        if reused and isinstance(error, StaleSession):
            return None
        return _all(recipients, (DEFERRED, f"4.4.2 {_error_text(error)}")), False
    except asyncio.CancelledError:
        session.close()
        raise
    except Exception as error:  # noqa: BLE001 - a defect here must not cost the other hops' results
        session.close()
        return _all(recipients, (DEFERRED, f"4.4.2 delivery client error: {type(error).__name__}: {_error_text(error)}")), False
    return _results(replies, recipients), session.is_connected


def _results(replies: TransactionReplies, recipients: list[str]) -> dict[str, tuple[str, str]]:
    """Each recipient's outcome: the reply to MAIL if it was refused, else to its RCPT if
    that was refused, else to the end of the message. Only that last reply can mean
    delivered: a message refused at DATA (or never sent) is not."""
    if replies.mail.kind != 2:
        return _all(recipients, _outcome(replies.mail))
    accepted = set(replies.accepted)
    results = {}
    for rcpt in recipients:
        if rcpt not in accepted:
            results[rcpt] = _outcome(replies.recipients[rcpt])
        elif replies.end is not None:
            results[rcpt] = _outcome(replies.end)
        else:  # accepted, but DATA was refused
            assert replies.data is not None
            results[rcpt] = (FAILED if replies.data.kind == 5 else DEFERRED, replies.data.summary())
    return results


def _outcome(reply: Reply) -> tuple[str, str]:
    return {2: DELIVERED, 5: FAILED}.get(reply.kind, DEFERRED), reply.summary()


def _all(recipients: list[str], outcome: tuple[str, str]) -> dict[str, tuple[str, str]]:
    return dict.fromkeys(recipients, outcome)


def _error_text(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def _unusable(hop: NextHop | None, sender: str) -> tuple[str, str] | None:
    """Why no transaction can be tried for this hop and sender (then for all its recipients)."""
    if hop is None:
        return DEFERRED, "4.3.5 no next hop configured for this domain"
    if hop.tls is TlsMode.NONE and not _loopback(hop.host):
        return DEFERRED, f"4.7.0 plain SMTP is only allowed to loopback next hops, not {hop.host}"
    if sender and not safe_address(sender):
        return FAILED, "5.1.7 unusable sender address"
    return None


@functools.lru_cache(maxsize=256)  # asked for every message; next hops are few
def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _by_hop(snapshot: Snapshot, recipients: tuple[RecipientState, ...]) -> dict[NextHop | None, list[str]]:
    groups: dict[NextHop | None, list[str]] = {}
    for r in recipients:
        groups.setdefault(snapshot.route(r.address).next_hop, []).append(r.address)
    return groups


def finish(spool: Spool, envelope: Envelope, hostname: str, now: float, message: bytes | None = None) -> str | None:
    """Remove a settled message (caller holds its lock), queueing a DSN for its failures; the DSN's id."""
    failed = tuple(r for r in envelope.recipients if r.status == FAILED)
    dsn_id = None
    if failed and needs_dsn(envelope):
        original = header_block(message if message is not None else spool.message(envelope.queue_id))
        dsn_id = _queue_dsn(spool, envelope, failed, original, hostname, now)
    spool.remove(envelope.queue_id)
    _audit_removed(envelope)
    return dsn_id


def _removal_done(envelope: Envelope, removal: asyncio.Future[None]) -> None:
    if removal.cancelled():
        return
    error = removal.exception()
    if error is None:
        _audit_removed(envelope)
    else:  # the message stays queued, to be delivered again: twice, never lost
        audit("delivery-error", queue_id=envelope.queue_id, error=type(error).__name__, detail=str(error)[:300])


def _audit_removed(envelope: Envelope) -> None:
    audit(
        "removed",
        queue_id=envelope.queue_id,
        message_id=envelope.message_id,
        delivered=[r.address for r in envelope.recipients if r.status == DELIVERED],
        failed=[r.address for r in envelope.recipients if r.status == FAILED],
    )


def _queue_dsn(
    spool: Spool, envelope: Envelope, failed: tuple[RecipientState, ...], original: bytes, hostname: str, now: float
) -> str:
    dsn_id = new_queue_id()
    body = build_dsn(envelope, failed, original, hostname, dt.datetime.fromtimestamp(now, dt.timezone.utc))
    dsn = Envelope(
        queue_id=dsn_id,
        mail_from="",
        recipients=(RecipientState(envelope.mail_from),),
        received_at=now,
        next_attempt=0.0,
        is_dsn=True,
        extra={"dsn_for": envelope.queue_id},
    )
    spool.store_now(body, dsn)
    audit("dsn", queue_id=dsn_id, dsn_for=envelope.queue_id, message_id=envelope.message_id, to=envelope.mail_from)
    return dsn_id
