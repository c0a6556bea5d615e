"""Acknowledgements (RFC 8098 `processed` MDNs) once a message reaches the hospital system.

Called by delivery after an attempt, with the recipients that attempt
delivered: for each one in a local domain whose policy says `send_mdn`, and
when the message asks (Disposition-Notification-To) and is no report and no
bounce, an MDN from the null sender is spooled like any message, before the
original leaves the queue, so a crash can repeat an MDN but never lose one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Sequence

from ..audit.log import audit
from ..core.errors import Rejection
from ..core.headers import HeaderBlock
from ..core.mdn import MdnError, MdnReport, build_mdn, mdn_decision
from ..core.mime import read_headers
from ..core.snapshot import Snapshot
from ..dkim import DkimKeyTable
from ..dkim import sign_message as dkim_sign
from ..smtp.decide import domain_of, header_block
from .spool import Envelope, RecipientState, Spool, new_queue_id

DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class PlannedMdn:
    final_recipient: str
    to: tuple[str, ...]
    original_message_id: str | None  # the delivered message's Message-ID, when fit to carry


def plan_mdns(snapshot: Snapshot, envelope: Envelope, delivered: list[str], message: bytes) -> tuple[PlannedMdn, ...]:
    """Which acknowledgements are due for the recipients just delivered; a refusal of a
    message that asked is audited."""
    acknowledging = [r for r in delivered if _acknowledges(snapshot, r)]
    if not acknowledging or envelope.is_dsn:
        return ()
    try:
        headers = read_headers(header_block(message))
    except Rejection:
        return ()  # the delivered message was judged already; an unreadable header asks for nothing
    decision = mdn_decision(headers, envelope.mail_from, True)
    if not decision.send:
        if headers.get("Disposition-Notification-To") is not None:
            audit("mdn-skipped", mdn_for=envelope.queue_id, message_id=envelope.message_id, why=decision.reason)
        return ()
    to = tuple(a for a in decision.recipients if snapshot.route(a).known)
    original_id = _message_id(headers)
    return tuple(PlannedMdn(r, to, original_id) for r in acknowledging) if to else ()


def _acknowledges(snapshot: Snapshot, address: str) -> bool:
    route = snapshot.route(address)
    return route.local and route.policy.send_mdn


class Acknowledgements:
    def __init__(
        self, spool: Spool, snapshot: Callable[[], Snapshot], hostname: str, reporting_ua: str | None, dkim: DkimKeyTable
    ) -> None:
        self.snapshot = snapshot
        self.outbox = MdnOutbox(spool, hostname, reporting_ua, dkim)

    def may_owe(self, delivered: Sequence[str]) -> bool:
        """Whether any of these delivered recipients may owe an MDN: one with a local route whose
        policy sends them. Never raises: in doubt, True, and after_attempt decides (and records
        the delivery whatever happens)."""
        try:
            snapshot = self.snapshot()
            return any(_acknowledges(snapshot, address) for address in delivered)
        except Exception:
            return True

    def after_attempt(self, envelope: Envelope, results: dict[str, tuple[str, str]], message: bytes, now: float) -> list[str]:
        """Spool the MDNs due (blocking: fsyncs); their queue ids. Never raises: a failure here
        must not undo the delivery just made (the hospital system would get the message twice)."""
        try:
            return self._after_attempt(envelope, results, message, now)
        except Exception as error:
            audit("mdn-failed", mdn_for=envelope.queue_id, message_id=envelope.message_id, error=type(error).__name__)
            return []

    def _after_attempt(self, envelope: Envelope, results: dict[str, tuple[str, str]], message: bytes, now: float) -> list[str]:
        delivered = [address for address, (status, _) in results.items() if status == DELIVERED]
        if not delivered:
            return []
        planned = plan_mdns(self.snapshot(), envelope, delivered, message)
        return [self._queue(envelope, mdn, now) for mdn in planned]

    def _queue(self, envelope: Envelope, mdn: PlannedMdn, now: float) -> str:
        queue_id = self.outbox.send(mdn.final_recipient, mdn.to, mdn.original_message_id, now, {"mdn_for": envelope.queue_id})
        audit("mdn", queue_id=queue_id, mdn_for=envelope.queue_id, message_id=envelope.message_id, to=list(mdn.to))
        return queue_id


class MdnOutbox:
    """MDNs from the relay's mailboxes, built, DKIM-signed when the domain has a key, and spooled."""

    def __init__(self, spool: Spool, hostname: str, reporting_ua: str | None, dkim: DkimKeyTable) -> None:
        self.spool, self.hostname, self.dkim = spool, hostname, dkim
        self.reporting_ua = reporting_ua or f"{hostname}; relay"

    def send(
        self,
        recipient: str,
        to: tuple[str, ...],
        original_message_id: str | None,
        now: float,
        extra: dict[str, str],
        error: MdnError | None = None,
    ) -> str:
        """Spool one MDN from the null sender for a message delivered to `recipient`; its queue id.
        Blocking: fsyncs."""
        queue_id = new_queue_id()
        report = MdnReport(
            reporting_ua=self.reporting_ua,
            from_address=recipient,
            to=to,
            final_recipient=recipient,
            original_recipient=None,
            original_message_id=original_message_id,
            message_id=f"<{queue_id}.mdn@{self.hostname}>",
            date=dt.datetime.fromtimestamp(now, dt.timezone.utc),
            error=error,
        )
        body = build_mdn(report)
        key = self.dkim.key_for(domain_of(report.from_address))
        if key is not None:
            body = dkim_sign(body, key)
        stored = Envelope(
            queue_id=queue_id,
            mail_from="",
            recipients=tuple(RecipientState(a) for a in to),
            received_at=now,
            next_attempt=0.0,
            message_id=report.message_id,
            is_dsn=True,  # a notification: never answered by a DSN in turn
            extra=extra,
        )
        self.spool.store_now(body, stored)
        return queue_id


def _message_id(headers: HeaderBlock) -> str | None:
    value = (headers.get("Message-ID") or "").strip()
    # Carried into the MDN's fields: printable ASCII, one token in angle brackets, or nothing.
    if value.startswith("<") and value.endswith(">") and value.isascii() and value.isprintable() and " " not in value:
        return value
    return None
