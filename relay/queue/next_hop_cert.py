"""A next hop's TLS certificate, judged after the handshake: pinned DN, path, revocation.

OpenSSL has checked the chain during the handshake, against the
`verify_bundle`'s certificates, and the host name unless a `verify_dn` pins
the subject instead. Python's ssl module cannot give the chain it built, nor
check the bundle's CRLs as the bundle's revocation mode says; so the leaf is
validated again here with `cryptography`'s verifier, at the time the caller
gives, and the path found is checked against the bundle's CRLs
(relay.core.revocation), as relay.smtp.peer does for peers that connect to
the relay. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, ServerVerifier, Store, VerificationError

from ..core import revocation
from ..core.bundle import Bundle
from ..core.errors import Rejection
from ..core.snapshot import NextHop
from ..smtp.decide import canonical_dn
from ..trust.dn import normalise_name


def next_hop_refusal(der: bytes | None, hop: NextHop, bundle: Bundle | None, now: dt.datetime) -> str | None:
    """Why the certificate the next hop presented is not acceptable; None when it is.

    `bundle` is the hop's loaded `verify_bundle` (None: the system store,
    whose CRLs the relay does not hold, so only the handshake's checks apply).
    """
    try:
        cert = x509.load_der_x509_certificate(der) if der else None
    except ValueError:
        cert = None
    if cert is None:
        return "no readable certificate"
    # The parsed name, not its RFC 4514 text parsed again.
    if hop.verify_dn is not None and normalise_name(cert.subject) != canonical_dn(hop.verify_dn):
        return f"certificate subject {cert.subject.rfc4514_string()} is not {hop.verify_dn}"
    if bundle is None:
        return None
    if not bundle.anchors:
        return f"bundle {bundle.name} has no anchors"
    name = _name_to_validate(cert, hop)
    if name is None:
        return "certificate has no subjectAltName to validate it by"
    try:
        chain = _verifier(bundle, name, now).verify(cert, list(bundle.intermediates))
    except VerificationError as error:
        return f"certificate does not chain to bundle {bundle.name}: {error}"
    try:
        revocation.check_path(chain, bundle, now)  # as the bundle's revocation mode says
    except Rejection as refusal:
        return f"{refusal.reason.value}: {refusal.detail}"
    return None


def _name_to_validate(cert: x509.Certificate, hop: NextHop) -> x509.GeneralName | None:
    """The name the verifier matches: the host, as the handshake did; with a pinned DN
    (which names the next hop instead), any name the certificate itself carries."""
    if hop.verify_dn is None:
        try:
            return x509.IPAddress(ipaddress.ip_address(hop.host))
        except ValueError:
            return x509.DNSName(hop.host)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    return next((n for n in names if isinstance(n, (x509.DNSName, x509.IPAddress))), None)


def _verifier(bundle: Bundle, name: x509.GeneralName, now: dt.datetime) -> ServerVerifier:
    return (
        PolicyBuilder()
        .store(Store(list(bundle.anchors)))
        .time(now.astimezone(dt.timezone.utc).replace(tzinfo=None))
        .build_server_verifier(name)  # type: ignore[arg-type]
    )
