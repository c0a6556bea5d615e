"""The reason vocabulary: one stable code for every verdict.

The string values are a public contract (CLI JSON, SMTP replies, audit,
metrics); never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    OK = "ok"
    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    SIGNATURE_INVALID = "signature-invalid"
    SIGNER_UNKNOWN = "signer-unknown"
    WEAK_ALGORITHM = "weak-algorithm"
    UNTRUSTED_ISSUER = "untrusted-issuer"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_YET_VALID = "certificate-not-yet-valid"
    CERTIFICATE_REVOKED = "certificate-revoked"
    REVOCATION_UNKNOWN = "revocation-unknown"
    KEY_USAGE = "key-usage"
    POLICY_MISMATCH = "policy-mismatch"
    ADDRESS_MISMATCH = "address-mismatch"
    NOT_PROFESSIONAL = "not-professional"
    DIRECTORY_MISMATCH = "directory-mismatch"
    DECRYPTION_FAILED = "decryption-failed"

    @property
    def rank(self) -> int:
        """Precedence when several reasons apply: the lowest rank is reported."""
        return _RANK[self]

    @property
    def description(self) -> str:
        return _DESCRIPTION[self]


# Reasons sharing a rank are alternatives that cannot both be observed for
# the same signer, so their relative order does not matter.
_RANK: dict[Reason, int] = {
    Reason.MALFORMED: 0,
    Reason.UNSIGNED: 0,
    # An envelope that does not open hides the signature, so nothing after it can be judged.
    Reason.DECRYPTION_FAILED: 1,
    Reason.SIGNATURE_INVALID: 2,
    Reason.SIGNER_UNKNOWN: 2,
    Reason.WEAK_ALGORITHM: 3,
    Reason.UNTRUSTED_ISSUER: 4,
    Reason.CERTIFICATE_EXPIRED: 5,
    Reason.CERTIFICATE_NOT_YET_VALID: 5,
    Reason.CERTIFICATE_REVOKED: 6,
    Reason.REVOCATION_UNKNOWN: 6,
    Reason.KEY_USAGE: 7,
    Reason.POLICY_MISMATCH: 8,
    Reason.ADDRESS_MISMATCH: 9,
    Reason.NOT_PROFESSIONAL: 10,
    Reason.DIRECTORY_MISMATCH: 11,
    Reason.OK: 99,
}

_DESCRIPTION: dict[Reason, str] = {
    Reason.OK: "signature and signer verified",
    Reason.MALFORMED: "the message or its signature structure is malformed",
    Reason.UNSIGNED: "the message is not S/MIME signed at its root",
    Reason.DECRYPTION_FAILED: "an envelope addressed to this relay cannot be opened",
    Reason.SIGNATURE_INVALID: "the signature does not verify over the content",
    Reason.SIGNER_UNKNOWN: "the signer certificate is not in the signature",
    Reason.WEAK_ALGORITHM: "a weak algorithm or key size is used",
    Reason.UNTRUSTED_ISSUER: "no path from the signer to a trusted anchor",
    Reason.CERTIFICATE_EXPIRED: "a certificate of the path has expired",
    Reason.CERTIFICATE_NOT_YET_VALID: "a certificate of the path is not yet valid",
    Reason.CERTIFICATE_REVOKED: "a certificate of the path is revoked",
    Reason.REVOCATION_UNKNOWN: "no usable revocation information",
    Reason.KEY_USAGE: "the signer certificate is not allowed to sign e-mail",
    Reason.POLICY_MISMATCH: "the signer certificate asserts no required policy",
    Reason.ADDRESS_MISMATCH: "the sender address is not bound to the signer certificate",
    Reason.NOT_PROFESSIONAL: "the signer certificate carries no professional identifier",
    Reason.DIRECTORY_MISMATCH: "the signer identifier differs from the directory's for this address",
}
