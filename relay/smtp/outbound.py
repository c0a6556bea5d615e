"""Outbound preparation at end of DATA: S/MIME signing on behalf of a sender, encryption
(relay.smtp.encrypt_step, when the recipients' policy asks), then DKIM.

Both happen before the spool, so the spool holds the message exactly as it
leaves and delivery stays a plain copy; a signing failure is answered to the
submitting client (451 while the key is unavailable) instead of being
discovered later with nobody to tell. Runs in a worker thread: the token
operation blocks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from cryptography.hazmat.primitives import hashes

from ..core.errors import Rejection
from ..core.limits import MessageLimits
from ..core.reasons import Reason
from ..core.snapshot import MessagePolicy, normalise_address
from ..dkim import DkimKeyTable
from ..dkim import sign_message as dkim_sign
from ..keys.errors import KeyStoreError
from ..core.smime_sign import sign_message
from .decide import Accepted, Refused, Transaction, domain_of
from .keyring import KeyRing
from .replies import Refusal


@dataclass(frozen=True, slots=True)
class Prepared:
    message: bytes
    signed_by: str | None  # SHA-256 fingerprint of the certificate that signed on behalf, or None
    dkim_domain: str | None  # d= of the DKIM signature added, or None


def signs_on_behalf(accepted: Accepted, policy: MessagePolicy, tx: Transaction) -> bool:
    """Only unsigned mail of an authenticated submitter the policy lists and asks to sign for."""
    if accepted.signed or tx.user is None or not policy.sign_on_behalf:
        return False
    return normalise_address(tx.sender) in {normalise_address(a) for a in policy.unsigned_senders}


class Outbound:
    def __init__(self, keyring: KeyRing, dkim: DkimKeyTable, limits: MessageLimits) -> None:
        self.keyring, self.dkim, self.limits = keyring, dkim, limits

    def prepare(
        self,
        data: bytes,
        tx: Transaction,
        accepted: Accepted,
        policy: MessagePolicy,
        now: dt.datetime,
        seal: Callable[[bytes], bytes | Refused] | None = None,
    ) -> Prepared | Refused:
        signed_by = None
        if signs_on_behalf(accepted, policy, tx):
            signed = self._sign(data, now)
            if isinstance(signed, Refused):
                return signed
            data, signed_by = signed
        if seal is not None:  # between the two signatures: S/MIME inside the envelope, DKIM over what travels
            sealed = seal(data)
            if isinstance(sealed, Refused):
                return sealed
            data = sealed
        key = self.dkim.key_for(domain_of(tx.sender)) if tx.user is not None and tx.sender else None
        if key is None:
            return Prepared(data, signed_by, None)
        try:
            return Prepared(dkim_sign(data, key), signed_by, key.domain)
        except ValueError as error:
            return Refused(Reason.MALFORMED, str(error))

    def _sign(self, data: bytes, now: dt.datetime) -> tuple[bytes, str] | Refused:
        if not self.keyring.signs:
            return Refused(Refusal.KEY_UNAVAILABLE, "signing on behalf is asked but no signing key is configured")
        try:
            key = self.keyring.signing_key()
            signed = sign_message(data, key, now, self.limits)
        except KeyStoreError as error:
            self.keyring.forget()
            return Refused(Refusal.KEY_UNAVAILABLE, f"signing key unavailable ({error.code}), try again later")
        except Rejection as rejection:
            return Refused(rejection.reason, rejection.detail)
        return signed, key.certificate.fingerprint(hashes.SHA256()).hex()
