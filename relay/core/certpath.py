"""Signer certificate path, validity, revocation, usage and policies.

(stub: interface fixed, implementation pending)
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from cryptography import x509

from .bundle import Bundle


def validate_signer(
    signer: x509.Certificate,
    presented: Sequence[x509.Certificate],
    bundle: Bundle,
    now: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    """The validated chain, leaf first; or raise Rejection in precedence order:
    weak-algorithm, untrusted-issuer, certificate-expired / -not-yet-valid,
    certificate-revoked / revocation-unknown, key-usage, policy-mismatch."""
    raise NotImplementedError
