"""Every SMTP reply the relay gives for a refusal: one table, RFC 3463 enhanced codes.

The reply text starts with a stable code (a Reason value or an edge code
below) so that clients and operators can match it; the detail after the
colon is for humans and never carries message content.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..core.reasons import Reason


class Refusal(StrEnum):
    """Refusals decided at the SMTP edge, before or around verification."""

    RELAY_DENIED = "relay-denied"
    UNKNOWN_MAILBOX = "unknown-mailbox"
    SENDER_DOMAIN_UNKNOWN = "sender-domain-unknown"
    SENDER_NOT_OWNED = "sender-not-owned"  # authenticated user differs from MAIL FROM
    TLS_REQUIRED = "tls-required"
    CLIENT_CERTIFICATE_MISSING = "client-certificate-missing"
    CLIENT_CERTIFICATE_UNTRUSTED = "client-certificate-untrusted"
    OPERATOR_NOT_LISTED = "operator-not-listed"
    ENVELOPE_MISMATCH = "envelope-mismatch"
    BARE_LINE_ENDING = "bare-line-ending"  # SMTP smuggling
    TOO_MANY_RECIPIENTS = "too-many-recipients"
    MESSAGE_TOO_BIG = "message-too-big"
    HEADER_TOO_BIG = "header-too-big"
    MAIL_LOOP = "mail-loop"
    STORAGE_ERROR = "storage-error"
    INTERNAL_ERROR = "internal-error"
    TOO_MANY_CONNECTIONS = "too-many-connections"
    SHUTTING_DOWN = "shutting-down"
    NULL_SENDER = "null-sender"
    LINE_TOO_LONG = "line-too-long"
    KEY_UNAVAILABLE = "key-unavailable"  # the organisation key (token) cannot sign or decrypt now
    ENCRYPTION_REQUIRED = "encryption-required"  # the recipient's policy requires encryption, no certificate


@dataclass(frozen=True, slots=True)
class ReplyCode:
    basic: int
    enhanced: str

    @property
    def temporary(self) -> bool:
        return self.basic // 100 == 4


_DENIED = ReplyCode(550, "5.7.1")

REPLIES: dict[Reason | Refusal, ReplyCode] = {
    # Verification verdicts.
    Reason.MALFORMED: ReplyCode(554, "5.6.0"),
    Reason.UNSIGNED: _DENIED,
    Reason.SIGNATURE_INVALID: ReplyCode(550, "5.7.7"),  # message integrity failure
    Reason.SIGNER_UNKNOWN: ReplyCode(550, "5.7.5"),  # cryptographic failure
    Reason.WEAK_ALGORITHM: ReplyCode(550, "5.7.6"),  # cryptographic algorithm not supported
    Reason.UNTRUSTED_ISSUER: _DENIED,
    Reason.CERTIFICATE_EXPIRED: _DENIED,
    Reason.CERTIFICATE_NOT_YET_VALID: _DENIED,
    Reason.CERTIFICATE_REVOKED: _DENIED,
    # No fresh CRL is a state of this relay, not a fault of the message: the
    # sender retries and succeeds once revocation data is available again.
    Reason.REVOCATION_UNKNOWN: ReplyCode(451, "4.7.5"),
    Reason.KEY_USAGE: _DENIED,
    Reason.POLICY_MISMATCH: _DENIED,
    Reason.ADDRESS_MISMATCH: _DENIED,
    Reason.NOT_PROFESSIONAL: _DENIED,
    Reason.DIRECTORY_MISMATCH: _DENIED,
    Reason.DECRYPTION_FAILED: ReplyCode(554, "5.7.5"),  # cryptographic failure
    # Edge refusals.
    Refusal.RELAY_DENIED: _DENIED,
    Refusal.UNKNOWN_MAILBOX: ReplyCode(550, "5.1.1"),
    Refusal.SENDER_DOMAIN_UNKNOWN: _DENIED,
    Refusal.SENDER_NOT_OWNED: _DENIED,
    Refusal.TLS_REQUIRED: ReplyCode(530, "5.7.0"),
    Refusal.CLIENT_CERTIFICATE_MISSING: ReplyCode(530, "5.7.0"),
    Refusal.CLIENT_CERTIFICATE_UNTRUSTED: _DENIED,
    Refusal.OPERATOR_NOT_LISTED: _DENIED,
    Refusal.ENVELOPE_MISMATCH: _DENIED,
    Refusal.BARE_LINE_ENDING: ReplyCode(554, "5.6.0"),
    Refusal.TOO_MANY_RECIPIENTS: ReplyCode(452, "4.5.3"),
    Refusal.MESSAGE_TOO_BIG: ReplyCode(552, "5.3.4"),
    Refusal.HEADER_TOO_BIG: ReplyCode(552, "5.6.0"),
    Refusal.MAIL_LOOP: ReplyCode(554, "5.4.6"),
    Refusal.STORAGE_ERROR: ReplyCode(451, "4.3.0"),
    Refusal.INTERNAL_ERROR: ReplyCode(451, "4.3.0"),
    Refusal.TOO_MANY_CONNECTIONS: ReplyCode(421, "4.7.0"),
    Refusal.SHUTTING_DOWN: ReplyCode(421, "4.3.2"),
    Refusal.NULL_SENDER: _DENIED,
    Refusal.LINE_TOO_LONG: ReplyCode(500, "5.5.2"),
    # A token that is locked, unplugged or lost its session: the client keeps the message and retries.
    Refusal.KEY_UNAVAILABLE: ReplyCode(451, "4.3.0"),
    Refusal.ENCRYPTION_REQUIRED: _DENIED,
}


def reply(code: Reason | Refusal, detail: str) -> str:
    """The full reply line, e.g. `550 5.7.1 certificate-revoked: serial 12 revoked`."""
    rc = REPLIES[code]
    return f"{rc.basic} {rc.enhanced} {code.value}: {_one_line(detail)}"


def _one_line(text: str) -> str:
    # A reply is one line; a detail with CR/LF would forge further replies.
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())[:400] or "refused"


# aiosmtpd answers some limits itself, with bare texts; the session rewrites
# them into the relay's form so that every refusal reads the same. (DATA is
# read by relay.smtp.data, whose refusals the session words itself.)
_PROTOCOL_REFUSALS: dict[str, tuple[Refusal, str]] = {
    "552 Error: message size exceeds fixed maximum message size": (Refusal.MESSAGE_TOO_BIG, "the declared SIZE is over the limit"),
    "500 Command line too long": (Refusal.LINE_TOO_LONG, "the command line is over the limit"),
    "530 Must issue a STARTTLS command first": (Refusal.TLS_REQUIRED, "issue STARTTLS first"),
}


def protocol_reply(line: str) -> str:
    """aiosmtpd's own reply, in the relay's form when it is a refusal the table knows."""
    known = _PROTOCOL_REFUSALS.get(line)
    return reply(*known) if known else line
