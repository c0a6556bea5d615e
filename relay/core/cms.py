"""CMS SignedData (RFC 5652) parsing and signature verification.

(stub: interface fixed, implementation pending)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True, slots=True)
class Signer:
    certificate: x509.Certificate
    digest_algorithm: str  # e.g. "sha256"
    signature_algorithm: str  # e.g. "rsassa_pkcs1v15", "rsassa_pss", "ecdsa"
    signing_time: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class SignedData:
    content: bytes  # the signed content (detached bytes or eContent)
    signers: tuple[Signer, ...]  # never empty
    certificates: tuple[x509.Certificate, ...]  # the certificate set, as presented


def verify_signed_data(der: bytes, detached_content: bytes | None) -> SignedData:
    """Verify every SignerInfo; raise Rejection(malformed|signature-invalid|signer-unknown|weak-algorithm)."""
    raise NotImplementedError
