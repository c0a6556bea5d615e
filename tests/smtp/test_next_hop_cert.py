"""A next hop's TLS certificate after the handshake: pinned DN, path to verify_bundle, revocation."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from relay import devpki
from relay.core.bundle import Bundle, Purpose, RevocationMode
from relay.core.snapshot import NextHop, TlsMode
from relay.queue.next_hop_cert import next_hop_refusal

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def pki():
    root = devpki.make_ca("Hop root", key_kind="p256")
    inter = devpki.make_ca("Hop intermediate", issuer=root, key_kind="p256")
    other = devpki.make_ca("Other root", key_kind="p256")

    def server(issuer, name="mx.hospital.test", dns=("mx.hospital.test",), eku=(ExtendedKeyUsageOID.SERVER_AUTH,), **kw):
        subject = devpki.organisation_subject(name, "1750000001", "Hospital")
        return devpki.make_leaf(issuer, subject, dns_names=list(dns), eku=list(eku), key_usage="both", policies=(), key_kind="p256", **kw)

    return {
        "root": root,
        "inter": inter,
        "good": server(inter),
        "revoked": server(inter, serial=4242),
        "no_san": server(inter, dns=()),
        "operator": server(inter, dns=(), eku=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)),
        "wildcard": server(inter, dns=("*.hospital.test",)),
        "expired": server(inter, not_after=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)),
        "stranger": server(other),
    }


def _bundle(pki, revoked=(), crl=True, mode=RevocationMode.WHERE_AVAILABLE) -> Bundle:
    crls = (devpki.make_crl(pki["inter"], revoked), devpki.make_crl(pki["root"])) if crl else ()
    return Bundle("hops", (pki["root"].cert,), (pki["inter"].cert,), crls, purpose=Purpose.TLS, revocation=mode)


def _der(issued) -> bytes:
    return issued.cert.public_bytes(Encoding.DER)


def _hop(host="mx.hospital.test", dn=None) -> NextHop:
    return NextHop(host, 25, TlsMode.STARTTLS, "hops", dn)


def test_a_valid_certificate_is_accepted_by_host_name(pki):
    assert next_hop_refusal(_der(pki["good"]), _hop(), _bundle(pki), NOW) is None


def test_a_valid_certificate_is_accepted_by_pinned_dn(pki):
    dn = pki["good"].cert.subject.rfc4514_string()
    assert next_hop_refusal(_der(pki["good"]), _hop("127.0.0.1", dn), _bundle(pki), NOW) is None


def test_a_revoked_certificate_is_refused(pki):
    why = next_hop_refusal(_der(pki["revoked"]), _hop(), _bundle(pki, revoked=[4242]), NOW)
    assert why is not None and why.startswith("certificate-revoked: ")
    # The same certificate, not on the CRL, passes: the refusal is the revocation.
    assert next_hop_refusal(_der(pki["revoked"]), _hop(), _bundle(pki), NOW) is None


def test_a_hard_bundle_without_crls_cannot_vouch_for_the_next_hop(pki):
    why = next_hop_refusal(_der(pki["good"]), _hop(), _bundle(pki, crl=False, mode=RevocationMode.HARD), NOW)
    assert why is not None and why.startswith("revocation-unknown: ")
    assert next_hop_refusal(_der(pki["good"]), _hop(), _bundle(pki, crl=False, mode=RevocationMode.SOFT), NOW) is None


def test_a_pinned_dn_must_match(pki):
    why = next_hop_refusal(_der(pki["good"]), _hop("127.0.0.1", "CN=someone.else,O=Other,C=FR"), _bundle(pki), NOW)
    assert why == f"certificate subject {pki['good'].cert.subject.rfc4514_string()} is not CN=someone.else,O=Other,C=FR"


@pytest.mark.parametrize(
    "name, hop, why",
    [
        ("stranger", _hop(), "does not chain to bundle hops"),
        ("expired", _hop(), "does not chain to bundle hops"),
        ("good", _hop("other.hospital.test"), "does not chain to bundle hops"),
    ],
)
def test_a_certificate_outside_the_bundle_or_its_time_or_name_is_refused(pki, name, hop, why):
    assert why in (next_hop_refusal(_der(pki[name]), hop, _bundle(pki), NOW) or "")


def test_a_pinned_certificate_without_subject_alt_name_is_judged_as_an_operator_certificate(pki):
    # Health PKIs issue operator certificates without a SAN: the DN is the identity.
    dn = pki["operator"].cert.subject.rfc4514_string()
    assert next_hop_refusal(_der(pki["operator"]), _hop("127.0.0.1", dn), _bundle(pki), NOW) is None
    why = next_hop_refusal(_der(pki["no_san"]), _hop("127.0.0.1", dn), _bundle(pki), NOW)  # no clientAuth
    assert why is not None and why.startswith("certificate does not chain to bundle hops: ") and "EKU" in why


def test_a_pinned_wildcard_certificate_is_validated_for_a_name_it_covers(pki):
    dn = pki["wildcard"].cert.subject.rfc4514_string()
    assert next_hop_refusal(_der(pki["wildcard"]), _hop("127.0.0.1", dn), _bundle(pki), NOW) is None
    assert next_hop_refusal(_der(pki["wildcard"]), _hop("relay.hospital.test"), _bundle(pki), NOW) is None


def test_a_host_name_written_with_its_final_dot_is_the_same_name(pki):
    assert next_hop_refusal(_der(pki["good"]), _hop("mx.hospital.test."), _bundle(pki), NOW) is None


def test_without_a_bundle_only_the_pin_is_checked(pki):
    dn = pki["stranger"].cert.subject.rfc4514_string()
    assert next_hop_refusal(_der(pki["stranger"]), _hop("127.0.0.1", dn), None, NOW) is None
    assert next_hop_refusal(_der(pki["stranger"]), _hop(), None, NOW) is None  # the handshake checked the name


@pytest.mark.parametrize("der", [None, b"", b"\x30\x03\x02\x01\x00"])
def test_no_readable_certificate_is_refused(pki, der):
    assert next_hop_refusal(der, _hop(), _bundle(pki), NOW) == "no readable certificate"
