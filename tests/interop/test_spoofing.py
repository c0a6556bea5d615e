"""Attempts to pass off content or a sender that the signature does not cover.

Each test builds, from genuinely signed material, a message a forger could
send, and checks the verdict names the right refusal (or, for harmless
transport changes, still accepts).
"""

from __future__ import annotations

import base64

import pytest
from asn1crypto import cms as asn1_cms

from relay.core.reasons import Reason
from relay.core.trustview import StaticTrust
from relay.core.verdict import Verdict
from relay.core.verify import verify_message
from tests import engines
from tests.engines import CRLF, DOCTOR, NOW, Pki, bundle_for

from .conftest import ONE_PER_ENGINE, EngineCase, Signatory, doctor_message

OPENSSL = EngineCase("openssl", "rsa", {"md": "sha256"}, "rsa-sha256")
EVIL = "evil@attacker.example"


def verify(pki: Pki, raw: bytes) -> Verdict:
    return verify_message(raw, StaticTrust((bundle_for(pki),)), NOW)


def _outer_and_body(message: bytes) -> tuple[bytes, bytes]:
    head, _, body = message.partition(CRLF + CRLF)
    return head + CRLF, body


def _replace_header(message: bytes, name: bytes, value: bytes) -> bytes:
    head, body = _outer_and_body(message)
    lines = head.split(CRLF)
    lines = [name + b": " + value if line.lower().startswith(name.lower() + b":") else line for line in lines]
    return CRLF.join(lines) + CRLF + body


# --------------------------------------------------------------------------
# Content outside or beside the signature.


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_signed_part_nested_in_an_unsigned_mixed_is_unsigned(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(case)
    outer, signed_entity = engines.split_message(signed)
    boundary = b"mixed-outer-7f3a"
    forged = b"".join(
        [
            outer,
            b"MIME-Version: 1.0\r\n",
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n',
            b"--" + boundary + b"\r\n",
            signed_entity,
            b"\r\n--" + boundary + b"\r\n",
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n",
            b"Also, please wire the fees to the account below.\r\n",
            b"\r\n--" + boundary + b"--\r\n",
        ]
    )
    assert verify(pki, forged).code is Reason.UNSIGNED


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_header_added_inside_the_signed_part(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(case)
    marker = b"Content-Type: text/plain; charset=utf-8\r\n"
    assert signed.count(marker) == 1
    forged = signed.replace(marker, marker + b"Content-Disposition: attachment; filename=x.exe\r\n")
    assert verify(pki, forged).code is Reason.SIGNATURE_INVALID


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_one_byte_flipped_in_the_signed_part(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(case)
    at = signed.index(b"veuillez")
    forged = signed[:at] + b"V" + signed[at + 1 :]
    assert verify(pki, forged).code is Reason.SIGNATURE_INVALID


# --------------------------------------------------------------------------
# The sender: outer headers are not signed, the certificate binds the address.


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_from_changed_after_signing(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    forged = _replace_header(signatory.sign(case), b"From", EVIL.encode())
    verdict = verify(pki, forged)
    assert verdict.code is Reason.ADDRESS_MISMATCH, verdict.detail


def test_two_from_headers(signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(OPENSSL)
    forged = b"From: " + EVIL.encode() + CRLF + signed
    assert verify(pki, forged).code is Reason.MALFORMED


def test_two_mailboxes_in_one_from(signatory: Signatory, pki: Pki) -> None:
    forged = _replace_header(signatory.sign(OPENSSL), b"From", f"{DOCTOR}, {EVIL}".encode())
    assert verify(pki, forged).code is Reason.MALFORMED


@pytest.mark.parametrize(
    "sender",
    [
        f'"{DOCTOR}" <{EVIL}>',  # quoted address as display name
        f"=?utf-8?b?{base64.b64encode(DOCTOR.encode()).decode()}?= <{EVIL}>",  # encoded-word
        f"=?utf-8?q?{DOCTOR.replace('@', '=40')}?= <{EVIL}>",
        f'"Dr Jean Dupont <{DOCTOR}>" <{EVIL}>',
    ],
    ids=["quoted", "encoded-b", "encoded-q", "quoted-angle"],
)
def test_display_name_that_looks_like_the_signer(sender: str, signatory: Signatory, pki: Pki) -> None:
    verdict = verify(pki, signatory.sign(OPENSSL, doctor_message(sender=sender)))
    assert verdict.code is Reason.ADDRESS_MISMATCH, verdict.detail


def test_unquoted_address_like_display_name_is_refused(signatory: Signatory, pki: Pki) -> None:
    # Not valid RFC 5322 (an unquoted "@" in a phrase); read loosely it could
    # look like the signer's address, so it must never be accepted.
    verdict = verify(pki, signatory.sign(OPENSSL, doctor_message(sender=f"{DOCTOR} <{EVIL}>")))
    assert verdict.code in (Reason.MALFORMED, Reason.ADDRESS_MISMATCH), verdict.detail


def test_display_name_naming_someone_else_is_harmless(signatory: Signatory, pki: Pki) -> None:
    verdict = verify(pki, signatory.sign(OPENSSL, doctor_message(sender=f'"{EVIL}" <{DOCTOR}>')))
    assert verdict.code is Reason.OK, verdict.detail


# --------------------------------------------------------------------------
# Opaque signatures and wrapped messages: a From inside the signed content.


def _opaque(outer_from: str, inner_from: str, pki: Pki) -> bytes:
    inner = f"From: {inner_from}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOrdonnance.\r\n".encode()
    der = engines.sign_openssl_der(inner, pki.signers["rsa"], detached=False)
    return engines.wrap_opaque(f"From: {outer_from}\r\nSubject: Ordonnance\r\n".encode(), der)


def test_opaque_with_matching_inner_from_is_accepted(pki: Pki) -> None:
    verdict = verify(pki, _opaque(DOCTOR, DOCTOR, pki))
    assert verdict.code is Reason.OK, verdict.detail


def test_opaque_with_outer_from_changed_after_signing(pki: Pki) -> None:
    # The signed inner From says who wrote it; an outer From naming the
    # certificate holder does not launder someone else's inner message.
    verdict = verify(pki, _opaque(DOCTOR, EVIL, pki))
    assert not verdict.accepted
    assert verdict.code is Reason.ADDRESS_MISMATCH, verdict.detail


def test_opaque_with_a_forged_outer_from(pki: Pki) -> None:
    verdict = verify(pki, _opaque(EVIL, DOCTOR, pki))
    assert verdict.code is Reason.ADDRESS_MISMATCH, verdict.detail


def _direct_wrapped(outer_from: str, inner_from: str, pki: Pki) -> bytes:
    # Direct (US) signs a message/rfc822 holding the whole original message.
    original = (
        f"From: {inner_from}\r\nTo: records@hisp.example\r\nSubject: Referral\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nReferral letter.\r\n"
    ).encode()
    entity = b"Content-Type: message/rfc822\r\n\r\n" + original
    der = engines.sign_openssl_der(entity, pki.signers["rsa"])
    return engines.wrap_detached(f"From: {outer_from}\r\nTo: records@hisp.example\r\n".encode(), entity, der, "sha-256")


def test_direct_wrapper_with_the_same_inner_from_is_accepted(pki: Pki) -> None:
    verdict = verify(pki, _direct_wrapped(DOCTOR, DOCTOR, pki))
    assert verdict.code is Reason.OK, verdict.detail


def test_direct_wrapper_with_a_different_inner_from(pki: Pki) -> None:
    verdict = verify(pki, _direct_wrapped(DOCTOR, EVIL, pki))
    assert verdict.code is Reason.ADDRESS_MISMATCH, verdict.detail


# --------------------------------------------------------------------------
# Several signers: every SignerInfo must hold.


def _with_second_signature_broken(der: bytes) -> bytes:
    info = asn1_cms.ContentInfo.load(der)
    second = info["content"]["signer_infos"][1]
    value = bytearray(second["signature"].native)
    value[len(value) // 2] ^= 0x01
    second["signature"] = bytes(value)
    return info.dump(force=True)


def test_two_signer_infos_both_good_is_accepted(pki: Pki) -> None:
    outer, entity = engines.split_message(doctor_message())
    der = engines.sign_openssl_der(entity, pki.signers["rsa"], pki.signers["p256"])
    verdict = verify(pki, engines.wrap_detached(outer, entity, der, "sha-256"))
    assert verdict.code is Reason.OK, verdict.detail


def test_two_signer_infos_one_bad(pki: Pki) -> None:
    outer, entity = engines.split_message(doctor_message())
    der = engines.sign_openssl_der(entity, pki.signers["rsa"], pki.signers["p256"])
    forged = engines.wrap_detached(outer, entity, _with_second_signature_broken(der), "sha-256")
    assert verify(pki, forged).code is Reason.SIGNATURE_INVALID


def test_two_signer_infos_one_untrusted(pki: Pki) -> None:
    outer, entity = engines.split_message(doctor_message())
    der = engines.sign_openssl_der(entity, pki.signers["rsa"], pki.signers["foreign"])
    verdict = verify(pki, engines.wrap_detached(outer, entity, der, "sha-256"))
    assert verdict.code is Reason.UNTRUSTED_ISSUER, verdict.detail


# --------------------------------------------------------------------------
# Line endings: transport may store LF; the signed bytes are CRLF-canonical.


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_bare_lf_file_is_accepted_after_canonicalisation(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    as_stored = signatory.sign(case).replace(CRLF, b"\n")
    assert b"\r" not in as_stored
    verdict = verify(pki, as_stored)
    assert verdict.code is Reason.OK, verdict.detail


def test_engine_output_with_mixed_line_endings_is_accepted(pki: Pki) -> None:
    # openssl's text mode writes LF everywhere but in the CRLF-canonical signed part.
    as_written = engines.sign_openssl(doctor_message(), pki.signers["rsa"], as_written=True)
    assert b"\r\n" in as_written and b"\n" in as_written.replace(CRLF, b"")
    verdict = verify(pki, as_written)
    assert verdict.code is Reason.OK, verdict.detail


def test_mixed_line_endings_inside_a_header_block_are_malformed(signatory: Signatory, pki: Pki) -> None:
    # A parser knowing only CRLF and one also knowing LF would split these
    # header fields differently: a place to hide a second From.
    signed = signatory.sign(OPENSSL)
    head, body = _outer_and_body(signed)
    lines = head.split(CRLF)[:-1]
    mixed = b"".join(line + (b"\n" if number % 2 else CRLF) for number, line in enumerate(lines))
    verdict = verify(pki, mixed + CRLF + body)
    assert verdict.code is Reason.MALFORMED, verdict.detail


def test_mixed_line_endings_inside_the_signed_part_are_refused(signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(OPENSSL)
    mixed = signed.replace(b"Bonjour,\r\n", b"Bonjour,\n", 1)
    assert mixed != signed
    verdict = verify(pki, mixed)
    assert verdict.code in (Reason.MALFORMED, Reason.SIGNATURE_INVALID), verdict.detail


def test_bare_cr_is_malformed(signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(OPENSSL)
    forged = signed.replace(b"Subject: Compte rendu\r\n", b"Subject: Compte rendu\rFrom: evil@attacker.example\r\n", 1)
    assert verify(pki, forged).code is Reason.MALFORMED
