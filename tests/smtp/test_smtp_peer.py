import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from cryptography.x509.oid import ExtendedKeyUsageOID

from relay import devpki
from relay.core.bundle import Bundle, Purpose, RevocationMode
from relay.core.reasons import Reason
from relay.core.snapshot import Snapshot
from relay.smtp.decide import Refused
from relay.smtp.peer import PeerCertificate, check_peer
from relay.smtp.replies import Refusal
from relay.trust.dn import normalise_dn

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
ROOT = devpki.make_ca("Operators root")
CA = devpki.make_ca("Operators CA", ROOT, path_length=0)


def _peer(serial: int) -> bytes:
    leaf = devpki.make_leaf(
        CA, devpki.organisation_subject("mx.peer.test", "1750000002", "PEER"), serial=serial,
        key_usage="both", eku=[ExtendedKeyUsageOID.CLIENT_AUTH], policies=(), key_kind="p256",
    )
    return leaf.cert.public_bytes(serialization.Encoding.DER)


def _snapshot(mode: RevocationMode, revoked: tuple[int, ...] | None) -> Snapshot:
    crls = () if revoked is None else (devpki.make_crl(ROOT), devpki.make_crl(CA, revoked))
    bundle = Bundle("operators", (ROOT.cert,), (CA.cert,), crls, purpose=Purpose.TLS, revocation=mode)
    return Snapshot("v", NOW, bundles={"operators": bundle})


def test_valid_peer_names_its_bundle():
    peer = check_peer(_peer(10), _snapshot(RevocationMode.HARD, ()), NOW)
    assert isinstance(peer, PeerCertificate) and peer.bundle == "operators"
    assert peer.subject.startswith("CN=mx.peer.test,OU=1750000002")
    assert peer.operator_dn == normalise_dn(peer.subject)


def test_the_operator_dn_comes_from_the_parsed_name_not_its_text():
    # Characters RFC 4514 text must escape, and a multi-valued RDN: the canonical
    # form is read from the certificate's structure and matches the whitelist's.
    subject = x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Hôpital "Nord", + Sud')]),
        x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "1750000002"),
            x509.NameAttribute(NameOID.COMMON_NAME, "mx.peer.test"),
        ]),
    ])
    leaf = devpki.make_leaf(CA, subject, serial=14, key_usage="both", eku=[ExtendedKeyUsageOID.CLIENT_AUTH], policies=(), key_kind="p256")
    peer = check_peer(leaf.cert.public_bytes(serialization.Encoding.DER), _snapshot(RevocationMode.HARD, ()), NOW)
    assert isinstance(peer, PeerCertificate)
    listed = r'CN=mx.peer.test+OU=1750000002,O=Hôpital \"Nord\"\, \+ Sud,C=FR'
    assert peer.operator_dn == normalise_dn(listed)


def test_revoked_peer_is_refused():
    refused = check_peer(_peer(11), _snapshot(RevocationMode.SOFT, (11,)), NOW)
    assert isinstance(refused, Refused) and refused.code is Reason.CERTIFICATE_REVOKED


def test_hard_mode_without_crl_is_a_temporary_refusal():
    refused = check_peer(_peer(12), _snapshot(RevocationMode.HARD, None), NOW)
    assert isinstance(refused, Refused) and refused.code is Reason.REVOCATION_UNKNOWN


def test_missing_unreadable_and_foreign_certificates():
    snap = _snapshot(RevocationMode.SOFT, ())
    assert check_peer(None, snap, NOW).code is Refusal.CLIENT_CERTIFICATE_MISSING
    assert check_peer(b"\x30\x03junk", snap, NOW).code is Refusal.CLIENT_CERTIFICATE_UNTRUSTED
    other = devpki.make_leaf(devpki.make_ca("Elsewhere"), devpki.organisation_subject("x", "1", "X"), eku=[ExtendedKeyUsageOID.CLIENT_AUTH], policies=())
    refused = check_peer(other.cert.public_bytes(serialization.Encoding.DER), snap, NOW)
    assert refused.code is Refusal.CLIENT_CERTIFICATE_UNTRUSTED and "operators" in refused.detail
    assert check_peer(_peer(13), Snapshot("v", NOW), NOW).detail == "no TLS trust bundle is configured"
