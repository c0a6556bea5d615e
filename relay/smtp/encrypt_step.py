"""Outbound S/MIME encryption at end of DATA, after signing and before DKIM and the spool.

The domain policy of each recipient says whether its mail leaves encrypted
(`encrypt = "never" | "when-possible" | "required"`), the trust directory's
[recipients] holds the certificates. A message is one spool entry for all
its recipients, so it gets one envelope for all of them or none:

- no recipient asks: the message leaves as it came;
- every recipient has a valid certificate: one envelope wraps the content
  key for each of them; AES-256-GCM (AuthEnvelopedData) when every
  recipient's policy says its receiver opens it (`encryption_aead`),
  AES-256-CBC (EnvelopedData) otherwise; RSA-OAEP (SHA-256) key transport;
- some lack one: with "when-possible" only, the message leaves clear; when
  one recipient "requires" it, the message is refused (550 5.7.1
  encryption-required) rather than delivered clear to it. A required
  recipient without a certificate is already refused at RCPT TO, so this
  only happens when it shares the message with another recipient that has
  no certificate, which must be sent to in a message of its own.

Signing comes first (RFC 8551 §3.7: the receiver verifies what it reads)
and the RFC 5322 fields stay outside the envelope for the transport.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509

from ..core.errors import Rejection
from ..core.limits import MessageLimits
from ..core.smime_decrypt import is_encrypted, may_hold_envelope
from ..core.smime_encrypt import ContentCipher, Recipient, choose_cipher, encrypt_message
from ..core.snapshot import EncryptMode, Snapshot
from ..core.timewindow import as_utc
from .decide import Refused
from .replies import Refusal


@dataclass(frozen=True, slots=True)
class EncryptPlan:
    certificates: tuple[x509.Certificate, ...]  # one per distinct certificate, in recipient order
    cipher: ContentCipher

    def seal(self, data: bytes, limits: MessageLimits) -> bytes | Refused:
        """The message with its content enveloped; CPU work, run it in a thread."""
        try:
            if may_hold_envelope(data) and is_encrypted(data, limits):
                return data  # already enveloped by the sender: never wrapped twice
            return encrypt_message(data, [Recipient(cert) for cert in self.certificates], self.cipher, limits)
        except Rejection as rejection:
            return Refused(rejection.reason, rejection.detail)


def certificate_for(snapshot: Snapshot, address: str, now: dt.datetime) -> x509.Certificate | None:
    """The recipient's certificate if it is valid now (it may have expired since the load)."""
    cert = snapshot.encryption_certificate(address)
    if cert is None or not cert.not_valid_before_utc <= as_utc(now) <= cert.not_valid_after_utc:
        return None
    return cert


def check_recipient(snapshot: Snapshot, address: str, now: dt.datetime) -> Refused | None:
    """At RCPT TO: a recipient whose policy requires encryption needs a certificate."""
    if snapshot.route(address).policy.encrypt is EncryptMode.REQUIRED and certificate_for(snapshot, address, now) is None:
        return Refused(Refusal.ENCRYPTION_REQUIRED, f"mail to {address} must be encrypted and the directory holds no valid certificate for it")
    return None


def plan(recipients: Sequence[str], snapshot: Snapshot, now: dt.datetime) -> EncryptPlan | Refused | None:
    """What to do with a message for these recipients: encrypt (the plan), refuse, or leave clear (None)."""
    policies = [snapshot.route(r).policy for r in recipients]
    modes = {p.encrypt for p in policies}
    if modes <= {EncryptMode.NEVER}:
        return None
    certificates = [certificate_for(snapshot, r, now) for r in recipients]
    missing = [r for r, cert in zip(recipients, certificates) if cert is None]
    if missing and EncryptMode.REQUIRED in modes:
        return Refused(
            Refusal.ENCRYPTION_REQUIRED,
            f"a recipient requires encryption and {len(missing)} other recipient(s) have no certificate; send to them separately",
        )
    if missing:
        return None
    unique = tuple(dict.fromkeys(cert for cert in certificates if cert is not None))
    return EncryptPlan(unique, choose_cipher(all(p.encryption_aead for p in policies)))
