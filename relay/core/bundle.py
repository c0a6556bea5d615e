"""Trust material as the core sees it: bundles of anchors, CRLs and a profile.

Bundles are immutable; the trust directory builds them once per snapshot, so
caches hanging off a bundle can never outlive the trust they were computed
from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography import x509


class Purpose(StrEnum):
    SMIME = "smime"  # signers of messages
    TLS = "tls"  # peer relays / operators presenting TLS certificates


class RevocationMode(StrEnum):
    HARD = "hard"  # every certificate below the anchor needs a fresh, valid CRL
    SOFT = "soft"  # a revoked certificate is refused; missing CRLs are tolerated
    WHERE_AVAILABLE = "where-available"  # hard for issuers with a CRL, unchecked otherwise


@dataclass(frozen=True, eq=False)
class Bundle:
    name: str
    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    purpose: Purpose = Purpose.SMIME
    require_professional: bool = True
    allow_org_certs: bool = False
    allow_subject_email: bool = False
    required_policies: frozenset[str] = frozenset()
    revocation: RevocationMode = RevocationMode.HARD
    # Per-bundle memo (validated paths, parsed indexes); lives and dies with the bundle.
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
