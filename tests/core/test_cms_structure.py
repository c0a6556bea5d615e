"""CMS SignedData verification on crafted structures: faults real engines would not produce."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core
from cryptography.hazmat.primitives import serialization

from relay import devpki
from relay.core.cms import verify_signed_data
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from tests import cmsbuild
from tests.cmsbuild import SignerSpec

CONTENT = b"Content-Type: text/plain\r\n\r\nOrdonnance du 1er mars.\r\n"
WHEN = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def ca() -> devpki.Issued:
    return devpki.make_ca("IGC-SANTE TEST PERSONNES")


@pytest.fixture(scope="module")
def alice(ca: devpki.Issued) -> devpki.Issued:
    return devpki.make_leaf(ca, devpki.practitioner_subject("899700367917", "DUPONT", "Alice"))


@pytest.fixture(scope="module")
def bob(ca: devpki.Issued) -> devpki.Issued:
    return devpki.make_leaf(ca, devpki.practitioner_subject("899700367918", "MARTIN", "Bob"), key_kind="p256")


@pytest.fixture(scope="module")
def weak(ca: devpki.Issued) -> devpki.Issued:
    return devpki.make_leaf(ca, devpki.practitioner_subject("899700367919", "PETIT", "Carole"), key_kind="rsa1024")


def refused(der: bytes, detached: bytes | None = CONTENT) -> Rejection:
    with pytest.raises(Rejection) as caught:
        verify_signed_data(der, detached)
    return caught.value


def two_signers(first: SignerSpec, second: SignerSpec) -> bytes:
    infos = [cmsbuild.signer_info(first, CONTENT), cmsbuild.signer_info(second, CONTENT)]
    return cmsbuild.signed_data(infos, [first.signer.cert, second.signer.cert])


def test_builder_signature_verifies_with_its_details(alice: devpki.Issued) -> None:
    data = verify_signed_data(cmsbuild.sign(CONTENT, SignerSpec(alice)), CONTENT)
    assert data.signers[0].signing_time == WHEN
    assert data.signers[0].certificate == alice.cert
    assert data.certificates == (alice.cert,)


def test_two_good_signers_both_reported(alice: devpki.Issued, bob: devpki.Issued) -> None:
    data = verify_signed_data(two_signers(SignerSpec(alice), SignerSpec(bob, digest="sha384")), CONTENT)
    assert {(s.certificate, s.signature_algorithm, s.digest_algorithm) for s in data.signers} == {
        (alice.cert, "rsassa_pkcs1v15", "sha256"),
        (bob.cert, "ecdsa", "sha384"),
    }


@pytest.mark.parametrize("bad_first", [True, False])
def test_every_signer_must_verify(alice: devpki.Issued, bob: devpki.Issued, bad_first: bool) -> None:
    good, bad = SignerSpec(alice), SignerSpec(bob, corrupt=True)
    der = two_signers(bad, good) if bad_first else two_signers(good, bad)
    assert refused(der).reason is Reason.SIGNATURE_INVALID


@pytest.mark.parametrize("weak_first", [True, False])
def test_invalid_signer_outranks_weak_signer(alice: devpki.Issued, weak: devpki.Issued, weak_first: bool) -> None:
    weak_spec, bad = SignerSpec(weak), SignerSpec(alice, corrupt=True)
    der = two_signers(weak_spec, bad) if weak_first else two_signers(bad, weak_spec)
    assert refused(der).reason is Reason.SIGNATURE_INVALID


def test_weak_signer_beside_good_signer(alice: devpki.Issued, weak: devpki.Issued) -> None:
    refusal = refused(two_signers(SignerSpec(alice), SignerSpec(weak)))
    assert refusal.reason is Reason.WEAK_ALGORITHM
    assert "1024" in refusal.detail


def test_malformed_signer_outranks_invalid_signer(alice: devpki.Issued, bob: devpki.Issued) -> None:
    broken = SignerSpec(bob, attrs=cmsbuild.attributes(CONTENT, omit=["message_digest"]))
    assert refused(two_signers(SignerSpec(alice, corrupt=True), broken)).reason is Reason.MALFORMED


def test_malformed_signer_outranks_unsupported_algorithm(alice: devpki.Issued, bob: devpki.Issued) -> None:
    unsupported = SignerSpec(alice, signature_oid="1.2.643.7.1.1.3.2")  # GOST R 34.10-2012
    broken = SignerSpec(bob, attrs=cmsbuild.attributes(CONTENT, omit=["content_type"]))
    assert refused(two_signers(unsupported, broken)).reason is Reason.MALFORMED


def test_zero_signer_infos(alice: devpki.Issued) -> None:
    refusal = refused(cmsbuild.signed_data([], [alice.cert]))
    assert (refusal.reason, refusal.detail) == (Reason.MALFORMED, "no SignerInfo")


@pytest.mark.parametrize("missing", ["message_digest", "content_type"])
def test_signed_attributes_need_content_type_and_message_digest(alice: devpki.Issued, missing: str) -> None:
    spec = SignerSpec(alice, attrs=cmsbuild.attributes(CONTENT, omit=[missing]))
    assert refused(cmsbuild.sign(CONTENT, spec)).reason is Reason.MALFORMED


@pytest.mark.parametrize("kind", ["message_digest", "content_type", "signing_time"])
def test_single_valued_attributes_occur_once(alice: devpki.Issued, kind: str) -> None:
    attrs = cmsbuild.attributes(CONTENT)
    twice = attrs + [next(a for a in attrs if a["type"] == kind)]
    assert refused(cmsbuild.sign(CONTENT, SignerSpec(alice, attrs=twice))).reason is Reason.MALFORMED


def test_message_digest_with_two_values(alice: devpki.Issued) -> None:
    digest = hashlib.sha256(CONTENT).digest()
    attrs = cmsbuild.attributes(CONTENT, omit=["message_digest"], extra=[{"type": "message_digest", "values": [digest, digest]}])
    assert refused(cmsbuild.sign(CONTENT, SignerSpec(alice, attrs=attrs))).reason is Reason.MALFORMED


def test_message_digest_mismatch(alice: devpki.Issued) -> None:
    attrs = cmsbuild.attributes(CONTENT, message_digest=hashlib.sha256(b"other").digest())
    refusal = refused(cmsbuild.sign(CONTENT, SignerSpec(alice, attrs=attrs)))
    assert refusal.reason is Reason.SIGNATURE_INVALID
    assert "messageDigest" in refusal.detail


def test_message_digest_of_another_algorithm(alice: devpki.Issued) -> None:
    attrs = cmsbuild.attributes(CONTENT, message_digest=hashlib.sha384(CONTENT).digest())
    assert refused(cmsbuild.sign(CONTENT, SignerSpec(alice, attrs=attrs))).reason is Reason.SIGNATURE_INVALID


def test_content_type_attribute_must_match_econtent_type(alice: devpki.Issued) -> None:
    attrs = cmsbuild.attributes(CONTENT, content_type=cmsbuild.ID_CT_TSTINFO)
    refusal = refused(cmsbuild.sign(CONTENT, SignerSpec(alice, attrs=attrs)))
    assert refusal.reason is Reason.MALFORMED
    assert "contentType" in refusal.detail


def test_non_data_content_needs_signed_attributes(alice: devpki.Issued) -> None:
    info = cmsbuild.signer_info(SignerSpec(alice, no_attrs=True), CONTENT)
    der = cmsbuild.signed_data([info], [alice.cert], econtent=CONTENT, content_type=cmsbuild.ID_CT_TSTINFO)
    assert refused(der, None).reason is Reason.MALFORMED


def test_non_data_content_with_signed_attributes(alice: devpki.Issued) -> None:
    attrs = cmsbuild.attributes(CONTENT, content_type=cmsbuild.ID_CT_TSTINFO)
    info = cmsbuild.signer_info(SignerSpec(alice, attrs=attrs), CONTENT)
    der = cmsbuild.signed_data([info], [alice.cert], econtent=CONTENT, content_type=cmsbuild.ID_CT_TSTINFO)
    assert verify_signed_data(der, None).content == CONTENT


def test_econtent_beside_detached_content(alice: devpki.Issued) -> None:
    der = cmsbuild.sign(CONTENT, SignerSpec(alice), detached=False)
    assert verify_signed_data(der, None).content == CONTENT
    refusal = refused(der, CONTENT)
    assert (refusal.reason, refusal.detail) == (Reason.MALFORMED, "eContent present beside a detached content")


def test_neither_econtent_nor_detached_content(alice: devpki.Issued) -> None:
    assert refused(cmsbuild.sign(CONTENT, SignerSpec(alice)), None).reason is Reason.MALFORMED


def test_empty_detached_content_is_content(alice: devpki.Issued) -> None:
    assert verify_signed_data(cmsbuild.sign(b"", SignerSpec(alice)), b"").content == b""


def test_signer_certificate_missing_from_the_set(alice: devpki.Issued, bob: devpki.Issued) -> None:
    info = cmsbuild.signer_info(SignerSpec(alice), CONTENT)
    refusal = refused(cmsbuild.signed_data([info], [bob.cert]))
    assert refusal.reason is Reason.SIGNER_UNKNOWN


def test_no_certificate_set_at_all(alice: devpki.Issued) -> None:
    info = cmsbuild.signer_info(SignerSpec(alice), CONTENT)
    assert refused(cmsbuild.signed_data([info], [])).reason is Reason.SIGNER_UNKNOWN


def test_same_serial_other_issuer_is_not_the_signer(ca: devpki.Issued, alice: devpki.Issued) -> None:
    other_ca = devpki.make_ca("AUTRE AC")
    twin = devpki.make_leaf(other_ca, alice.cert.subject, serial=alice.cert.serial_number, key=alice.key)
    info = cmsbuild.signer_info(SignerSpec(alice), CONTENT)
    assert refused(cmsbuild.signed_data([info], [twin.cert])).reason is Reason.SIGNER_UNKNOWN


def test_issuer_matched_as_a_name_not_as_bytes(alice: devpki.Issued) -> None:
    der = cmsbuild.sign(CONTENT, SignerSpec(alice, printable_issuer=True))
    sid = asn1_cms.ContentInfo.load(der)["content"]["signer_infos"][0]["sid"].chosen
    assert sid["issuer"].dump() != alice.cert.issuer.public_bytes()  # other string types, same name
    assert verify_signed_data(der, CONTENT).signers[0].certificate == alice.cert


@pytest.mark.parametrize("nest", [False, True])
def test_chunked_econtent(alice: devpki.Issued, nest: bool) -> None:
    info = cmsbuild.signer_info(SignerSpec(alice), CONTENT)
    der = cmsbuild.signed_data([info], [alice.cert], encap_der=cmsbuild.chunked_encap(CONTENT, 7, nest=nest))
    assert CONTENT not in der
    assert verify_signed_data(der, None).content == CONTENT


def test_many_small_chunks(alice: devpki.Issued) -> None:
    content = bytes(range(256)) * 2048
    info = cmsbuild.signer_info(SignerSpec(alice), content)
    der = cmsbuild.signed_data([info], [alice.cert], encap_der=cmsbuild.chunked_encap(content, 64))
    assert verify_signed_data(der, None).content == content


@pytest.mark.parametrize("fixture", ["alice", "bob"])
def test_subject_key_identifier_sid(request: pytest.FixtureRequest, fixture: str, ca: devpki.Issued) -> None:
    signer = request.getfixturevalue(fixture)
    der = cmsbuild.signed_data([cmsbuild.signer_info(SignerSpec(signer, sid="ski"), CONTENT)], [ca.cert, signer.cert])
    assert verify_signed_data(der, CONTENT).signers[0].certificate == signer.cert


def test_unknown_subject_key_identifier(alice: devpki.Issued) -> None:
    der = cmsbuild.sign(CONTENT, SignerSpec(alice, sid="ski", ski=b"\x01" * 20))
    refusal = refused(der)
    assert refusal.reason is Reason.SIGNER_UNKNOWN
    assert "01010101" in refusal.detail


def test_ski_sid_matches_a_certificate_without_the_extension(ca: devpki.Issued) -> None:
    key = devpki.new_key("p256")
    cert = _without_ski(ca, key)
    signer = devpki.Issued(cert, key)
    ski = _sha1_of_public_key(cert)
    assert verify_signed_data(cmsbuild.sign(CONTENT, SignerSpec(signer, sid="ski", ski=ski)), CONTENT)


def _without_ski(ca: devpki.Issued, key: devpki.PrivateKey) -> devpki.x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return (
        x509.CertificateBuilder()
        .subject_name(devpki.direct_subject("A"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(devpki.DEFAULT_NOT_BEFORE)
        .not_valid_after(devpki.DEFAULT_NOT_AFTER)
        .sign(ca.key, hashes.SHA256())
    )


def _sha1_of_public_key(cert: devpki.x509.Certificate) -> bytes:
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)).public_key.sha1


def test_attributes_are_verified_as_received_not_resorted(alice: devpki.Issued) -> None:
    # DER would sort the SET OF (contentType 06..., messageDigest 04... first);
    # signers sometimes send another order and sign those very bytes.
    attrs = cmsbuild.attributes(CONTENT)
    attrs.reverse()
    der = cmsbuild.sign(CONTENT, SignerSpec(alice, attrs=attrs, keep_order=True))
    signed = asn1_cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signed_attrs"]
    assert [a["type"].native for a in signed] == ["signing_time", "message_digest", "content_type"]
    assert verify_signed_data(der, CONTENT).signers[0].signing_time == WHEN


def test_unknown_attributes_are_covered_and_ignored(alice: devpki.Issued) -> None:
    extra = [{"type": "1.2.3.4.5", "values": [core.UTF8String("x")]}]
    der = cmsbuild.sign(CONTENT, SignerSpec(alice, attrs=cmsbuild.attributes(CONTENT, extra=extra)))
    assert verify_signed_data(der, CONTENT).signers[0].certificate == alice.cert


def test_signature_over_attributes_not_content(alice: devpki.Issued) -> None:
    # Attributes for one content, signature stated over another: only the
    # messageDigest binds the content, and it disagrees.
    info = cmsbuild.signer_info(SignerSpec(alice), b"autre contenu")
    assert refused(cmsbuild.signed_data([info], [alice.cert])).reason is Reason.SIGNATURE_INVALID


def test_rsa_signature_algorithm_must_agree_with_digest(alice: devpki.Issued) -> None:
    spec = SignerSpec(alice, signature_oid="1.2.840.113549.1.1.12")  # sha384WithRSAEncryption, digest sha256
    refusal = refused(cmsbuild.sign(CONTENT, spec))
    assert refusal.reason is Reason.MALFORMED
    assert "disagrees" in refusal.detail


def test_rsa_encryption_oid_takes_the_digest_algorithm(alice: devpki.Issued) -> None:
    spec = SignerSpec(alice, digest="sha384", signature_oid="1.2.840.113549.1.1.1")
    assert verify_signed_data(cmsbuild.sign(CONTENT, spec), CONTENT).signers[0].digest_algorithm == "sha384"


def test_ecdsa_signature_algorithm_must_agree_with_digest(bob: devpki.Issued) -> None:
    spec = SignerSpec(bob, signature_oid="1.2.840.10045.4.3.3")  # ecdsa-with-SHA384, digest sha256
    assert refused(cmsbuild.sign(CONTENT, spec)).reason is Reason.MALFORMED


def test_signature_algorithm_for_another_key_type(bob: devpki.Issued) -> None:
    spec = SignerSpec(bob, signature_oid="1.2.840.113549.1.1.11")  # sha256WithRSAEncryption, EC key
    refusal = refused(cmsbuild.sign(CONTENT, spec))
    assert refusal.reason is Reason.SIGNATURE_INVALID
    assert "does not fit" in refusal.detail


@pytest.mark.parametrize(
    ("field", "oid"),
    [("signature_oid", "1.2.643.7.1.1.3.2"), ("digest", "2.16.840.1.101.3.4.2.8")],  # GOST, SHA3-256
)
def test_unsupported_algorithms_are_signature_invalid(alice: devpki.Issued, field: str, oid: str) -> None:
    spec = SignerSpec(alice)
    der = cmsbuild.sign(CONTENT, spec)
    info = asn1_cms.ContentInfo.load(der)
    si = info["content"]["signer_infos"][0]
    if field == "digest":
        si["digest_algorithm"] = {"algorithm": oid}
        si["signature_algorithm"] = {"algorithm": "rsassa_pkcs1v15"}  # hash left to the digestAlgorithm
    else:
        si["signature_algorithm"] = {"algorithm": oid}
    refusal = refused(info.dump(force=True))
    assert refusal.reason is Reason.SIGNATURE_INVALID
    assert "unsupported" in refusal.detail and oid in refusal.detail


@pytest.mark.parametrize("salt", [0, 20, 32, 64])
def test_pss_salt_length_is_taken_from_the_parameters(alice: devpki.Issued, salt: int) -> None:
    der = cmsbuild.sign(CONTENT, SignerSpec(alice, pss_salt=salt))
    assert verify_signed_data(der, CONTENT).signers[0].signature_algorithm == "rsassa_pss"


def pss_params(hash_name: str, mgf1_hash: str, salt: int) -> dict:
    """RSASSA-PSS-params as a signer states them (RFC 4055 §3.1)."""
    return {
        "hash_algorithm": {"algorithm": hash_name},
        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": mgf1_hash}},
        "salt_length": salt,
    }


def test_pss_salt_length_must_be_the_stated_one(alice: devpki.Issued) -> None:
    stated = pss_params("sha256", "sha256", 20)
    der = cmsbuild.sign(CONTENT, SignerSpec(alice, pss_salt=32, pss_params=stated))
    assert refused(der).reason is Reason.SIGNATURE_INVALID


def test_pss_hash_must_agree_with_digest(alice: devpki.Issued) -> None:
    stated = pss_params("sha384", "sha384", 32)
    assert refused(cmsbuild.sign(CONTENT, SignerSpec(alice, pss_salt=32, pss_params=stated))).reason is Reason.MALFORMED


def test_pss_with_default_parameters_means_sha1(alice: devpki.Issued) -> None:
    # Absent fields default to SHA-1/MGF1-SHA-1/20: against a SHA-256 digestAlgorithm, a contradiction.
    der = cmsbuild.sign(CONTENT, SignerSpec(alice, pss_salt=20, pss_params={}))
    assert refused(der).reason is Reason.MALFORMED


def test_pss_with_mgf1_sha1_is_weak(alice: devpki.Issued) -> None:
    # Verified as stated (RFC 8017 allows another MGF1 hash), then judged weak.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    stated = pss_params("sha256", "sha1", 32)
    spec = SignerSpec(alice, pss_salt=32, pss_params=stated)
    info = cmsbuild.signer_info(spec, CONTENT)
    to_sign = cmsbuild.attributes(CONTENT)
    signed = asn1_cms.CMSAttributes(to_sign)
    info["signed_attrs"] = signed
    info["signature"] = alice.key.sign(signed.dump(), padding.PSS(padding.MGF1(hashes.SHA1()), 32), hashes.SHA256())
    der = cmsbuild.signed_data([info], [alice.cert])
    refusal = refused(der)
    assert refusal.reason is Reason.WEAK_ALGORITHM
    assert "MGF1" in refusal.detail


def test_ed25519_signer(ca: devpki.Issued) -> None:
    signer = devpki.make_leaf(ca, devpki.direct_subject("Dr"), key_kind="ed25519")
    der = cmsbuild.sign(CONTENT, SignerSpec(signer, digest="sha512"))
    assert verify_signed_data(der, CONTENT).signers[0].signature_algorithm == "ed25519"
    assert refused(cmsbuild.sign(CONTENT, SignerSpec(signer, digest="sha512", corrupt=True))).reason is Reason.SIGNATURE_INVALID


def test_ed25519_without_attributes(ca: devpki.Issued) -> None:
    signer = devpki.make_leaf(ca, devpki.direct_subject("Dr"), key_kind="ed25519")
    der = cmsbuild.sign(CONTENT, SignerSpec(signer, digest="sha512", no_attrs=True))
    assert verify_signed_data(der, CONTENT).signers[0].signing_time is None
    assert refused(der, CONTENT + b" ").reason is Reason.SIGNATURE_INVALID


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x30\x00",
        b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n",
        asn1_cms.ContentInfo({"content_type": "data", "content": b"x"}).dump(),
    ],
)
def test_not_a_signed_data(der: bytes) -> None:
    assert refused(der).reason is Reason.MALFORMED


def test_trailing_bytes(alice: devpki.Issued) -> None:
    der = cmsbuild.sign(CONTENT, SignerSpec(alice))
    assert verify_signed_data(der, CONTENT)
    assert refused(der + b"\x00").reason is Reason.MALFORMED


def test_truncated(alice: devpki.Issued) -> None:
    der = cmsbuild.sign(CONTENT, SignerSpec(alice))
    assert refused(der[:-1]).reason is Reason.MALFORMED


def test_undecodable_certificate_in_the_set(alice: devpki.Issued) -> None:
    info = cmsbuild.signer_info(SignerSpec(alice), CONTENT)
    bogus = asn1_cms.CertificateChoices({"certificate": _certificate_with_bad_signature_algorithm(alice)})
    der = cmsbuild.signed_data([info], [alice.cert])
    parsed = asn1_cms.ContentInfo.load(der)
    parsed["content"]["certificates"] = [parsed["content"]["certificates"][0], bogus]
    refusal = refused(parsed.dump(force=True))
    assert refusal.reason is Reason.MALFORMED
    assert "certificate" in refusal.detail


def _certificate_with_bad_signature_algorithm(issued: devpki.Issued) -> object:
    from asn1crypto import x509 as asn1_x509

    cert = asn1_x509.Certificate.load(issued.cert.public_bytes(serialization.Encoding.DER))
    tbs = cert["tbs_certificate"]
    tbs["version"] = 7  # no such X.509 version
    return asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": cert["signature_algorithm"], "signature_value": cert["signature_value"]})


def test_attribute_certificates_in_the_set_are_skipped(alice: devpki.Issued) -> None:
    info = cmsbuild.signer_info(SignerSpec(alice), CONTENT)
    parsed = asn1_cms.ContentInfo.load(cmsbuild.signed_data([info], [alice.cert]))
    other = asn1_cms.CertificateChoices({"other": {"other_cert_format": "1.2.3.4", "other_cert": core.Null()}})
    parsed["content"]["certificates"] = [other, parsed["content"]["certificates"][0]]
    assert verify_signed_data(parsed.dump(force=True), CONTENT).certificates == (alice.cert,)


def test_readings_shared_between_messages_never_mix_them_up(alice: devpki.Issued, bob: devpki.Issued) -> None:
    # Signer identifiers and algorithm identifiers are read once and shared;
    # messages that alternate them must each still get their own answer.
    unsupported = asn1_cms.ContentInfo.load(cmsbuild.sign(CONTENT, SignerSpec(alice)))
    unsupported["content"]["signer_infos"][0]["signature_algorithm"] = {"algorithm": "1.2.643.7.1.1.3.2"}
    cases = [
        (cmsbuild.sign(CONTENT, SignerSpec(alice, pss_salt=32)), "rsassa_pss"),
        (cmsbuild.sign(CONTENT, SignerSpec(alice)), "rsassa_pkcs1v15"),
        (unsupported.dump(force=True), Reason.SIGNATURE_INVALID),
        (cmsbuild.sign(CONTENT, SignerSpec(bob, sid="ski")), "ecdsa"),
        (cmsbuild.sign(CONTENT, SignerSpec(alice, pss_salt=20)), "rsassa_pss"),
    ]
    for _ in range(2):
        for der, expected in cases:
            try:
                outcome: object = verify_signed_data(der, CONTENT).signers[0].signature_algorithm
            except Rejection as refusal:
                outcome = refusal.reason
            assert outcome == expected
