"""The pure S/MIME builder, with software keys: structure, CMS attributes, real verifiers."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from hypothesis import given, settings
from hypothesis import strategies as st

from keys_support import MESSAGE, SIGNING_TIME, openssl_verify, split_signed
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from relay.core.smime_sign import SignatureScheme, SigningKey, sign_message
from relay.keys.software import software_key


@pytest.fixture(scope="module")
def rsa_key(pki):
    return software_key(pki.rsa.key, pki.rsa.cert, (pki.ca.cert,))


def _header_block(message: bytes) -> bytes:
    return message.split(b"\r\n\r\n", 1)[0]


def test_outer_headers_stay_outside_and_content_headers_move_inside(rsa_key):
    signed = sign_message(MESSAGE, rsa_key, SIGNING_TIME)
    outer = _header_block(signed)
    for field in (b"From: ", b"To: ", b"Subject: ", b"Date: ", b"Message-ID: ", b"X-MSS-CODECDA: "):
        assert field in outer
    assert outer.count(b"MIME-Version: 1.0") == 1
    assert b'multipart/signed; protocol="application/pkcs7-signature";' in outer
    assert b'micalg="sha-256"' in outer
    assert b"charset=utf-8" not in outer
    inner = split_signed(signed).content
    assert inner.startswith(b"Content-Type: text/plain; charset=utf-8\r\n")
    assert b"Subject:" not in inner and b"From:" not in inner


def test_every_line_ends_in_crlf_even_from_lf_input(rsa_key):
    signed = sign_message(MESSAGE.replace(b"\r\n", b"\n"), rsa_key, SIGNING_TIME)
    assert b"\n" not in signed.replace(b"\r\n", b"")
    assert signed == sign_message(MESSAGE, rsa_key, SIGNING_TIME)  # PKCS#1 v1.5: deterministic


def test_eight_bit_body_is_quoted_printable_inside_the_signature(rsa_key):
    inner = split_signed(sign_message(MESSAGE, rsa_key, SIGNING_TIME)).content
    assert inner.isascii()
    assert b"Content-Transfer-Encoding: quoted-printable" in inner
    assert b"8bit" not in inner
    assert b"R=C3=A9sultats" in inner


def test_a_message_without_content_type_gets_the_default_one(rsa_key):
    inner = split_signed(sign_message(b"From: a@b.fr\r\nSubject: x\r\n\r\nhello\r\n", rsa_key, SIGNING_TIME)).content
    assert inner == b"Content-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n"


def test_signed_attributes_are_the_rfc_8551_set(rsa_key):
    parts = split_signed(sign_message(MESSAGE, rsa_key, SIGNING_TIME))
    signed_data = cms.ContentInfo.load(parts.signature)["content"]
    assert signed_data["encap_content_info"]["content"].native is None  # detached
    info = signed_data["signer_infos"][0]
    attrs = {a["type"].native: a["values"][0] for a in info["signed_attrs"]}
    assert attrs["content_type"].native == "data"
    assert attrs["message_digest"].native == hashlib.sha256(parts.content).digest()
    assert attrs["signing_time"].native == SIGNING_TIME
    assert attrs["smime_capabilities"][0]["capability_id"].native == "aes256_gcm"
    assert info["digest_algorithm"]["algorithm"].native == "sha256"
    presented = [c.chosen["tbs_certificate"]["subject"].native["common_name"] for c in signed_data["certificates"]]
    assert sorted(presented) == ["IGC-SANTE TEST ORGANISATIONS", "hopital-test.mssante.fr"]


def test_signing_time_after_2049_is_generalized_time(rsa_key):
    late = dt.datetime(2051, 3, 1, tzinfo=dt.timezone.utc)
    info = cms.ContentInfo.load(split_signed(sign_message(MESSAGE, rsa_key, late)).signature)["content"]["signer_infos"][0]
    time = next(a["values"][0] for a in info["signed_attrs"] if a["type"].native == "signing_time")
    assert time.name == "generalized_time" and time.native == late


@pytest.mark.parametrize(
    "kind, pss, algorithm",
    [("rsa", False, "rsassa_pkcs1v15"), ("rsa", True, "rsassa_pss"), ("ec", False, "sha256_ecdsa")],
)
def test_openssl_and_gpgsm_accept_each_scheme(pki, gpgsm_verify, kind, pss, algorithm):
    issued = getattr(pki, kind)
    signed = sign_message(MESSAGE, software_key(issued.key, issued.cert, (pki.ca.cert,), rsa_pss=pss), SIGNING_TIME)
    info = cms.ContentInfo.load(split_signed(signed).signature)["content"]["signer_infos"][0]
    assert info["signature_algorithm"]["algorithm"].native == algorithm
    openssl = openssl_verify(signed, pki.ca_file)
    assert openssl.returncode == 0, openssl.stderr.decode()
    gpgsm = gpgsm_verify(signed)
    assert gpgsm.returncode == 0 and b"Good signature" in gpgsm.stderr, gpgsm.stderr.decode()


def test_openssl_refuses_a_tampered_signed_part(pki, rsa_key):
    signed = sign_message(MESSAGE, rsa_key, SIGNING_TIME)
    tampered = signed.replace(b"R=C3=A9sultats normaux", b"R=C3=A9sultats anormaux")
    assert tampered != signed
    assert openssl_verify(tampered, pki.ca_file).returncode != 0


def test_scheme_must_fit_the_certificate_key(pki, rsa_key):
    wrong = SigningKey(pki.ec.cert, (), SignatureScheme.RSA_PKCS1V15, rsa_key.sign)
    with pytest.raises(ValueError):
        sign_message(MESSAGE, wrong, SIGNING_TIME)


def test_naive_signing_time_is_refused(rsa_key):
    with pytest.raises(ValueError):
        sign_message(MESSAGE, rsa_key, dt.datetime(2026, 6, 1))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\nbody only\r\n",
        b" folded: first\r\n\r\nbody\r\n",
        b"From: a@b.fr\r\nthis is not a header\r\n\r\nbody\r\n",
        b"From: a@b.fr\r\nX-Long: " + b"a" * 2000 + b"\r\n\r\nbody\r\n",
    ],
)
def test_unreadable_input_is_a_malformed_rejection(rsa_key, raw):
    with pytest.raises(Rejection) as refusal:
        sign_message(raw, rsa_key, SIGNING_TIME)
    assert refusal.value.reason is Reason.MALFORMED


def _verify_in_process(signed: bytes, key: SigningKey) -> None:
    parts = split_signed(signed)
    info = cms.ContentInfo.load(parts.signature)["content"]["signer_infos"][0]
    attrs = info["signed_attrs"]
    digest = next(a["values"][0].native for a in attrs if a["type"].native == "message_digest")
    assert digest == hashlib.sha256(parts.content).digest()
    to_sign = cms.CMSAttributes.load(attrs.untag().dump()).dump()
    public = key.certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(info["signature"].native, to_sign, ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(info["signature"].native, to_sign, padding.PKCS1v15(), hashes.SHA256())


_body_lines = st.lists(
    st.binary(max_size=120).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=12
)


@settings(max_examples=60, deadline=None)
@given(lines=_body_lines, subject=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_any_body_yields_a_valid_signature_over_the_exact_part(pki, lines, subject):
    key = software_key(pki.ec.key, pki.ec.cert)
    raw = b"From: a@b.fr\r\nSubject: " + subject.encode() + b"\r\n\r\n" + b"\r\n".join(lines)
    signed = sign_message(raw, key, SIGNING_TIME)
    _verify_in_process(signed, key)
    assert split_signed(signed).content.isascii()


@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(st.binary(max_size=400), st.builds(lambda h, b: h + b"\r\n\r\n" + b, st.binary(max_size=120), st.binary(max_size=200))))
def test_arbitrary_input_is_signed_or_refused_as_malformed(pki, raw):
    key = software_key(pki.ec.key, pki.ec.cert)
    try:
        signed = sign_message(raw, key, SIGNING_TIME)
    except Rejection as refusal:
        assert refusal.reason is Reason.MALFORMED
        return
    _verify_in_process(signed, key)
