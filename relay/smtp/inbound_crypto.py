"""Inbound decryption at end of DATA: an envelope addressed to our organisation is opened
before judgement, so its inner signature is verified as usual and the clean
rebuilt message (outer fields + decrypted entity) is what the spool keeps.

Only mail whose recipients are all local is opened: mail passing through to
another domain stays encrypted end to end, and a message for local and
remote recipients at once would otherwise hand the clear text to the remote
next hop. A clear message carrying an envelope deeper in its tree is refused
(EFAIL). Runs in a worker thread: the token operation blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import Rejection
from ..core.limits import MessageLimits
from ..core.smime_decrypt import decrypt_if_encrypted, may_hold_envelope
from ..core.snapshot import Snapshot
from ..keys.errors import KeyStoreError
from .decide import Refused, Transaction
from .keyring import KeyRing
from .replies import Refusal


@dataclass(frozen=True, slots=True)
class Opened:
    message: bytes
    decrypted: bool
    cipher: str | None = None  # content cipher of the envelope opened, for the audit


class InboundCrypto:
    def __init__(self, keyring: KeyRing, limits: MessageLimits) -> None:
        self.keyring, self.limits = keyring, limits

    def open(self, data: bytes, tx: Transaction, snapshot: Snapshot) -> Opened | Refused:
        if not tx.recipients or not all(snapshot.route(r).local for r in tx.recipients):
            return Opened(data, False)
        if not may_hold_envelope(data):
            return Opened(data, False)
        try:
            decrypted = decrypt_if_encrypted(data, self.keyring.decryption_keys, self.limits)
        except Rejection as rejection:
            return Refused(rejection.reason, rejection.detail)
        except KeyStoreError as error:
            self.keyring.forget()
            return Refused(Refusal.KEY_UNAVAILABLE, f"decryption key unavailable ({error.code}), try again later")
        if decrypted is None:
            return Opened(data, False)
        return Opened(decrypted.message, True, str(decrypted.cipher))
