"""The aiosmtpd handler: MAIL, RCPT and end-of-DATA decisions for one listener.

Each hook asks the pure decisions in relay.smtp.decide, verification runs in
the Verifier's pool, and a message is answered 250 only once the spool has
it on disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import inspect
import time
from dataclasses import dataclass
from typing import Any, Callable

from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session

from ..audit.log import audit
from ..core.reasons import Reason
from ..core.snapshot import Snapshot
from ..metrics.registry import Metrics
from ..core.verdict import Verdict
from ..dkim import NO_SIGNATURE, DkimResult, has_signature
from ..queue.spool import Envelope, RecipientState, Spool, SpoolError, Stored, new_queue_id
from . import decide, encrypt_step
from .config import ListenerConfig, ListenerKind, ServiceConfig
from .decide import Accepted, Refused
from .dkim_inbound import InboundDkim
from .inbound_crypto import InboundCrypto
from .outbound import Outbound
from .peer import check_peer
from .replies import Refusal, reply
from .session import RelaySMTP, hook_names
from .verifier import Verifier


@dataclass
class Services:
    """What every listener's handler shares."""

    config: ServiceConfig
    snapshot: Callable[[], Snapshot]
    verifier: Verifier
    spool: Spool
    queued: Callable[[str, Stored], None]  # tells delivery a message is waiting, with what was stored
    metrics: Metrics
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    inbound: InboundCrypto | None = None  # decryption before judgement, when [keys] can decrypt
    outbound: Outbound | None = None  # signing on behalf and DKIM before the spool
    dkim_in: InboundDkim | None = None  # DKIM verification of mail from outside


class RelayHandler:
    def __init__(self, listener: ListenerConfig, services: Services) -> None:
        self.listener = listener
        self.services = services
        self.limits = services.config.limits

    def __dir__(self) -> list[str]:
        """The aiosmtpd hooks only: aiosmtpd reads the handler with dir() for every connection."""
        return hook_names(type(self), ("handle_", "auth_"))

    async def handle_PROXY(self, server: RelaySMTP, session: Session, envelope: SmtpEnvelope, proxy_data: Any) -> bool:
        return await server.accept_proxy(proxy_data)  # relay.smtp.proxy

    # -- EHLO: advertise AUTH only where it is offered ---------------------

    async def handle_EHLO(self, server: RelaySMTP, session: Session, envelope: SmtpEnvelope, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.listener.kind is not ListenerKind.SUBMISSION:
            responses = [r for r in responses if not r.startswith("250-AUTH")]
        # aiosmtpd writes each element of the list on its own (one send, and under
        # TLS one record, per line): the reply goes as one element, in one write.
        return ["\r\n".join(responses)]

    # aiosmtpd reads this hook's signature for every connection: computed once.
    handle_EHLO.__signature__ = inspect.signature(handle_EHLO)  # type: ignore[attr-defined]

    def handle_STARTTLS(self, server: RelaySMTP, session: Session, envelope: SmtpEnvelope) -> bool:
        server.audit_tls()
        return True  # the peer certificate is judged at MAIL FROM, where the reply can say why

    # -- MAIL FROM ---------------------------------------------------------

    async def handle_MAIL(self, server: RelaySMTP, session: Session, envelope: SmtpEnvelope, address: str, options: list[str]) -> str:
        refused = await self._check_sender(server, session, address)
        audit(
            "mail",
            listener=self.listener.name,
            peer=server.peer_ip,
            mail_from=address,
            user=session.auth_data if session.authenticated else None,
            refused=str(refused.code) if refused else None,
            detail=refused.detail if refused else None,
        )
        if refused:
            return reply(refused.code, refused.detail)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def _check_sender(self, server: RelaySMTP, session: Session, address: str) -> Refused | None:
        kind = self.listener.kind
        if kind is ListenerKind.SUBMISSION:
            if address in ("", "<>"):
                return Refused(Refusal.NULL_SENDER, "submitted mail needs a sender address")
            return decide.check_submitter(str(session.auth_data), address)
        if kind is ListenerKind.MX:
            return await self._check_peer(server, address)
        return None

    async def _check_peer(self, server: RelaySMTP, address: str) -> Refused | None:
        tls = server.tls_object()
        if tls is None:
            return Refused(Refusal.TLS_REQUIRED, "issue STARTTLS first")
        snapshot = self.services.snapshot()
        # Path validation and CRL checks are CPU work: off the event loop.
        peer = await asyncio.to_thread(check_peer, tls.getpeercert(binary_form=True), snapshot, self.services.clock())
        if isinstance(peer, Refused):
            return peer
        server.session.peer_certificate = peer  # type: ignore[attr-defined]
        audit("tls-peer", peer=server.peer_ip, subject=peer.subject, fingerprint=peer.fingerprint_sha256, bundle=peer.bundle)
        return decide.check_peer_operator(snapshot, reverse_path(address), peer.operator_dn, peer.subject)

    # -- RCPT TO -----------------------------------------------------------

    async def handle_RCPT(self, server: RelaySMTP, session: Session, envelope: SmtpEnvelope, address: str, options: list[str]) -> str:
        refused: Refused | None
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            refused = Refused(Refusal.TOO_MANY_RECIPIENTS, f"at most {self.limits.max_recipients} recipients per message")
        else:
            may_relay = self.listener.kind is not ListenerKind.MX
            snapshot = self.services.snapshot()
            refused = decide.check_recipient(snapshot, address, may_relay) or encrypt_step.check_recipient(
                snapshot, address, self.services.clock()
            )
        audit(
            "rcpt",
            listener=self.listener.name,
            peer=server.peer_ip,
            mail_from=envelope.mail_from,
            rcpt=address,
            refused=str(refused.code) if refused else None,
        )
        if refused:
            return reply(refused.code, refused.detail)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    # -- end of DATA -------------------------------------------------------

    async def handle_DATA(self, server: RelaySMTP, session: Session, envelope: SmtpEnvelope) -> str:
        server.busy = True
        started = time.perf_counter()
        try:
            with self.services.spool.expecting():
                answer, fields = await self._judge_and_queue(server, session, envelope)
        except Exception as error:  # a bug must cost one temporary failure, never the service
            answer = reply(Refusal.INTERNAL_ERROR, "internal error, try again later")
            fields = {"refused": str(Refusal.INTERNAL_ERROR), "error": type(error).__name__}
        finally:
            server.busy = False
        refused = fields.get("refused")
        if refused:
            self.services.metrics.message_refused(_code(refused))
        else:
            self.services.metrics.message_accepted()
        audit(
            "done",
            listener=self.listener.name,
            peer=server.peer_ip,
            mail_from=envelope.mail_from,
            rcpts=list(envelope.rcpt_tos),
            reply=answer.split(" ", 2)[0] + " " + answer.split(" ", 2)[1],
            ms=round((time.perf_counter() - started) * 1000, 2),
            **fields,
        )
        return answer

    async def _judge_and_queue(self, server: RelaySMTP, session: Session, envelope: SmtpEnvelope) -> tuple[str, dict[str, Any]]:
        data: bytes = envelope.original_content or b""
        if len(data) > self.limits.message.max_message_bytes:  # aiosmtpd enforces SIZE already; never judge more
            refused = Refused(Refusal.MESSAGE_TOO_BIG, f"over {self.limits.message.max_message_bytes} bytes")
            return reply(refused.code, refused.detail), {"refused": str(refused.code)}
        tx = decide.Transaction(
            sender=reverse_path(envelope.mail_from),
            recipients=tuple(envelope.rcpt_tos),
            user=str(session.auth_data) if session.authenticated else None,
        )
        snapshot = self.services.snapshot()  # one snapshot for the whole message, even across a reload
        fields: dict[str, Any] = {}
        dkim_results = await self._verify_dkim(data)
        if dkim_results:
            fields["dkim_results"] = [str(r.status) for r in dkim_results]
        if self.services.inbound is not None:
            opened = await asyncio.to_thread(self.services.inbound.open, data, tx, snapshot)
            if isinstance(opened, Refused):
                return reply(opened.code, opened.detail), {"refused": str(opened.code), "detail": opened.detail, "encrypted": True}
            if opened.decrypted:
                data, fields["decrypted"] = opened.message, opened.cipher
        started = time.perf_counter()
        judgement = await self.services.verifier.judge(data, tx, snapshot, self.services.clock())
        if judgement.verdict is not None:
            self.services.metrics.verification_time(time.perf_counter() - started)
        fields["message_id"] = judgement.message_id
        if judgement.verdict is not None:
            fields.update(_verdict_fields(judgement.verdict))
        outcome = judgement.outcome
        if isinstance(outcome, Refused):
            return _refuse(outcome, fields)
        fields["smime"] = "pass" if outcome.signed else "none"
        # Before signing on behalf or DKIM, so that what they cover is what leaves.
        # It drops whole lines: what the judgement found CRLF-only stays so.
        data = decide.strip_forged_results(data, self.services.config.hostname)
        as_judged = True  # data holds the judged bytes, not a rewriting of them
        encryption = encrypt_step.plan(tx.recipients, snapshot, self.services.clock())
        if isinstance(encryption, Refused):
            return _refuse(encryption, fields)
        seal = None
        if encryption:
            seal = functools.partial(encryption.seal, limits=self.limits.message)
            fields.update(encrypted_with=str(encryption.cipher), encrypted_for=len(encryption.certificates))
        if self.services.outbound is not None:
            policy = snapshot.route(tx.sender).policy
            prepared = await asyncio.to_thread(self.services.outbound.prepare, data, tx, outcome, policy, self.services.clock(), seal)
            if isinstance(prepared, Refused):
                return _refuse(prepared, fields)
            data, as_judged = prepared.message, False
            fields.update(signed_on_behalf=prepared.signed_by, dkim=prepared.dkim_domain)
        elif seal is not None:
            sealed = await asyncio.to_thread(seal, data)
            if isinstance(sealed, Refused):
                return _refuse(sealed, fields)
            data, as_judged = sealed, False
        queue_id = new_queue_id()
        fields["queue_id"] = queue_id
        trace = self._trace_fields(server, session, queue_id, outcome, dkim_results)
        message = trace + data
        stored = Envelope(
            queue_id=queue_id,
            mail_from=tx.sender,
            recipients=tuple(RecipientState(r) for r in tx.recipients),
            received_at=time.time(),
            next_attempt=0.0,
            message_id=judgement.message_id,
            listener=self.listener.name,
            extra={k: v for k, v in fields.items() if k.startswith("signer")},
            # The judgement refused any bare CR or LF in data; the trace fields are checked here.
            crlf_only=as_judged and decide.check_line_endings(trace) is None,
        )
        try:
            await self.services.spool.store(message, stored)
        except SpoolError as error:
            fields["refused"] = str(Refusal.STORAGE_ERROR)
            fields["error"] = error.strerror or str(error)
            return reply(Refusal.STORAGE_ERROR, "could not store the message, try again later"), fields
        audit("queued", queue_id=queue_id, message_id=stored.message_id, mail_from=stored.mail_from, rcpts=list(tx.recipients), bytes=len(message))
        self.services.queued(queue_id, (stored, message))
        return f"250 2.0.0 OK queued as {queue_id}", fields

    async def _verify_dkim(self, data: bytes) -> tuple[DkimResult, ...]:
        """The signatures as received (before decryption); submitted mail is ours, not judged."""
        if self.services.dkim_in is None or self.listener.kind is ListenerKind.SUBMISSION:
            return ()
        if not has_signature(data):  # most mail: no thread and no parse for nothing
            return NO_SIGNATURE
        return await asyncio.to_thread(self.services.dkim_in.verify, data)

    def _trace_fields(
        self, server: RelaySMTP, session: Session, queue_id: str, accepted: Accepted, dkim: tuple[DkimResult, ...] = ()
    ) -> bytes:
        hostname = self.services.config.hostname
        protocol = "ESMTP" if session.extended_smtp else "SMTP"
        if server.tls_object() is not None:
            protocol += "S"
        if session.authenticated:
            protocol += "A"  # RFC 3848
        received = decide.received_field(session.host_name, server.peer_ip, hostname, protocol, queue_id, self.services.clock())
        user = str(session.auth_data) if session.authenticated else None
        methods = tuple(result.method_result() for result in dkim)
        return received + decide.authentication_results(hostname, accepted, user, methods)


def _code(value: str) -> Reason | Refusal:
    try:
        return Reason(value)
    except ValueError:
        return Refusal(value)


def reverse_path(mail_from: str | None) -> str:
    """The sender address, "" for the null reverse-path (aiosmtpd keeps it as "<>")."""
    return "" if mail_from in (None, "", "<>") else str(mail_from)


def _verdict_fields(verdict: Verdict) -> dict[str, Any]:
    signer = verdict.signer
    return {
        "verdict": str(verdict.decision),
        "code": str(verdict.code),
        "signer_fingerprint": signer.fingerprint_sha256 if signer else None,
        "signer_national_id": signer.national_id if signer else None,
        "signer_email": signer.email if signer else None,
    }


def _refuse(why: Refused, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The reply to a refusal, its code and detail added to the audit fields."""
    fields.update(refused=str(why.code), detail=why.detail)
    return reply(why.code, why.detail), fields
