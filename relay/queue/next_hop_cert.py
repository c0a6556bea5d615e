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
from ..core.timewindow import naive_utc
from ..core.snapshot import NextHop
from ..smtp.decide import canonical_dn
from ..smtp.peer import operator_verifier
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
    try:
        chain = _path(cert, hop, bundle, now)
    except (VerificationError, ValueError) as error:
        return f"certificate does not chain to bundle {bundle.name}: {error}"
    try:
        revocation.check_path(chain, bundle, now)  # as the bundle's revocation mode says
    except Rejection as refusal:
        return f"{refusal.reason.value}: {refusal.detail}"
    return None


def _path(cert: x509.Certificate, hop: NextHop, bundle: Bundle, now: dt.datetime) -> list[x509.Certificate]:
    """The certificate's path to the bundle (leaf first): as a server certificate for the
    host, as the handshake checked it; with a pinned DN, which names the next hop instead,
    for any name the certificate carries, or as an operator certificate when it carries none
    (health PKIs issue some without a subjectAltName)."""
    intermediates = list(bundle.intermediates)
    if hop.verify_dn is None:
        return _server_verifier(bundle, _host_name(hop.host.rstrip(".")), now).verify(cert, intermediates)
    names = _names(cert)
    if not names:
        return list(operator_verifier(bundle.anchors, now).verify(cert, intermediates).chain)
    failure: Exception | None = None
    for name in names:
        try:
            return _server_verifier(bundle, name, now).verify(cert, intermediates)
        except (VerificationError, ValueError) as error:
            failure = failure or error
    assert failure is not None
    raise failure


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _names(cert: x509.Certificate) -> list[x509.GeneralName]:
    """The DNS names and addresses of the subjectAltName; a wildcard as a name it covers."""
    try:
        entries = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[x509.GeneralName] = [n for n in entries if isinstance(n, x509.IPAddress)]
    for dns in entries.get_values_for_type(x509.DNSName):
        names.append(x509.DNSName("wildcard" + dns[1:] if dns.startswith("*.") else dns))
    return names


def _server_verifier(bundle: Bundle, name: x509.GeneralName, now: dt.datetime) -> ServerVerifier:
    return (
        PolicyBuilder()
        .store(Store(list(bundle.anchors)))
        .time(naive_utc(now))
        .build_server_verifier(name)  # type: ignore[arg-type]
    )
