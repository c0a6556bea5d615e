"""Who the signer is (IGC-Santé / Direct profiles) and whether the sender address is theirs.

(stub: interface fixed, implementation pending)
"""

from __future__ import annotations

from cryptography import x509

from .bundle import Bundle
from .verdict import SignerIdentity


def read_identity(cert: x509.Certificate) -> SignerIdentity:
    raise NotImplementedError


def check_address_binding(cert: x509.Certificate, sender: str, bundle: Bundle) -> None:
    """Raise Rejection(address-mismatch) unless the certificate binds the sender address."""
    raise NotImplementedError


def check_professional(who: SignerIdentity, bundle: Bundle) -> None:
    """Raise Rejection(not-professional) when the bundle requires an identifier and there is none."""
    raise NotImplementedError
