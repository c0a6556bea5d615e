"""Signatures damaged in transit in places a lazy ASN.1 reader only decodes
late: the outer structures parse, an inner field does not. The verdict must
still be a refusal, never an exception."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from relay.core.reasons import Reason
from relay.core.trustview import StaticTrust
from relay.core.verdict import Decision
from relay.core.verify import verify_message
from tests import engines
from tests.engines import NOW, Pki, bundle_for

from .conftest import doctor_message


def _with_certificate_bytes_changed(pki: Pki, which: str, old: bytes, new: bytes, keyid: bool = False) -> bytes:
    """A message signed by the "rsa" signer whose certificate set has the
    signer's ("signer") or the intermediate's ("intermediate") certificate damaged."""
    signer = pki.signers["rsa"]
    outer, entity = engines.split_message(doctor_message())
    der = engines.sign_openssl_der(entity, signer, keyid=keyid)
    damaged_cert = signer.issued.cert if which == "signer" else pki.intermediate.cert
    cert = damaged_cert.public_bytes(serialization.Encoding.DER)
    assert len(old) == len(new) and cert.count(old) == 1
    damaged = cert.replace(old, new)
    assert der.count(cert) == 1
    return engines.wrap_detached(outer, entity, der.replace(cert, damaged), "sha-256")


def test_subject_string_with_an_unknown_tag_yields_a_verdict(pki: Pki) -> None:
    # UTF8String "DUPONT" (tag 0x0c) turned into tag 0x2c: cryptography
    # raises KeyError, not ValueError, when the subject is read.
    raw = _with_certificate_bytes_changed(pki, "signer", b"\x0c\x06DUPONT", b"\x2c\x06DUPONT")
    verdict = verify_message(raw, StaticTrust((bundle_for(pki),)), NOW)
    assert verdict.decision is Decision.REJECT
    assert verdict.detail


def test_signer_identifier_with_a_damaged_issuer_name_yields_a_verdict(pki: Pki) -> None:
    # The SignerInfo's issuerAndSerialNumber names the intermediate; its first
    # AttributeTypeAndValue gets tag SET (0x31) instead of SEQUENCE (0x30).
    outer, entity = engines.split_message(doctor_message())
    der = bytearray(engines.sign_openssl_der(entity, pki.signers["rsa"]))
    name = pki.intermediate.cert.subject.public_bytes()
    sid_issuer = bytes(der).rindex(name)  # after the certificate set: inside the SignerInfo
    assert der[sid_issuer + 4] == 0x30
    der[sid_issuer + 4] = 0x31
    raw = engines.wrap_detached(outer, entity, bytes(der), "sha-256")
    verdict = verify_message(raw, StaticTrust((bundle_for(pki),)), NOW)
    assert verdict.decision is Decision.REJECT
    assert verdict.detail


def test_a_damaged_intermediate_beside_the_signer_is_malformed(pki: Pki) -> None:
    # Even a certificate the path would not need: the set as sent is broken.
    old = b"\x0c\x18IGC-SANTE TEST PERSONNES"
    raw = _with_certificate_bytes_changed(pki, "intermediate", old, b"\x2c" + old[1:])
    verdict = verify_message(raw, StaticTrust((bundle_for(pki),)), NOW)
    assert verdict.code is Reason.MALFORMED, verdict.detail


def test_signer_with_an_unreadable_issuer_name_yields_a_verdict(pki: Pki) -> None:
    # Found by subjectKeyIdentifier, so the CMS layer never compares names;
    # the path builder is the first to read the signer's issuer.
    old = b"\x0c\x18IGC-SANTE TEST PERSONNES"
    raw = _with_certificate_bytes_changed(pki, "signer", old, b"\x2c" + old[1:], keyid=True)
    verdict = verify_message(raw, StaticTrust((bundle_for(pki),)), NOW)
    assert verdict.decision is Decision.REJECT
    assert verdict.detail
