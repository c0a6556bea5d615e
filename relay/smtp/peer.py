"""Peer relays on the MX listener: their TLS client certificate against the TLS bundles.

OpenSSL has already checked the chain during the handshake (the listener
requests a certificate against the same anchors); this re-validates with
`cryptography`'s verifier at an explicit time, per bundle, so that the
decision names the bundle and uses the snapshot's own intermediates, then
checks the path against the bundle's CRLs (relay.core.revocation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ..core import revocation
from ..core.bundle import Purpose
from ..core.errors import Rejection
from ..core.timewindow import naive_utc
from ..core.snapshot import Snapshot
from ..trust.dn import normalise_name
from .decide import Refused
from .replies import Refusal


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    subject: str  # RFC 4514, for replies and the audit trail
    fingerprint_sha256: str
    bundle: str
    # The subject in the trust directory's canonical form, from the parsed
    # name: compared with the whitelist's operator DNs, never its text re-read.
    operator_dn: str


def tls_anchors(snapshot: Snapshot) -> tuple[x509.Certificate, ...]:
    return tuple(a for b in snapshot.bundles.values() if b.purpose is Purpose.TLS for a in b.anchors)


def check_peer(der: bytes | None, snapshot: Snapshot, now: dt.datetime) -> PeerCertificate | Refused:
    if not der:
        return Refused(Refusal.CLIENT_CERTIFICATE_MISSING, "present a TLS client certificate of your operator")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return Refused(Refusal.CLIENT_CERTIFICATE_UNTRUSTED, "unreadable client certificate")
    why = "no TLS trust bundle is configured"
    for bundle in snapshot.bundles.values():
        if bundle.purpose is not Purpose.TLS or not bundle.anchors:
            continue
        try:
            chain = operator_verifier(bundle.anchors, now).verify(cert, list(bundle.intermediates)).chain
        except VerificationError as error:
            why = f"client certificate does not chain to bundle {bundle.name}: {error}"
            continue
        try:
            revocation.check_path(chain, bundle, now)  # as the bundle's revocation mode says
        except Rejection as refusal:
            return Refused(refusal.reason, f"client certificate: {refusal.detail}")
        return PeerCertificate(
            cert.subject.rfc4514_string(), cert.fingerprint(hashes.SHA256()).hex(), bundle.name, normalise_name(cert.subject)
        )
    return Refused(Refusal.CLIENT_CERTIFICATE_UNTRUSTED, why)


def operator_verifier(anchors: tuple[x509.Certificate, ...], now: dt.datetime) -> ClientVerifier:
    """Operator certificates (MSSanté `DNCertificatOperateur`): client authentication, a SAN optional."""
    # Operator certificates of health PKIs often carry no SAN: the DN is the identity.
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    return (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(naive_utc(now))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
        .build_client_verifier()
    )
