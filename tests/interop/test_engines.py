"""Messages signed by real S/MIME engines, verified end to end by verify_message.

Every engine with every algorithm it offers is accepted with the signer's
identity; every reason code of the vocabulary is reached through messages an
engine really produced.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from relay import devpki
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from relay.core.smime_decrypt import decrypt_message
from relay.core.trustview import StaticTrust
from relay.core.verdict import Decision, Verdict
from relay.core.verify import verify_message
from relay.devpki import IGC_SANTE_TEST_POLICY, make_crl
from relay.keys.decrypt import software_decryption_key
from tests import engines
from tests.crypt.crypt_support import break_mac
from tests.engines import DOCTOR, DOCTOR_ID, NOW, Pki, bundle_for

from .conftest import ONE_PER_ENGINE, SUPPORTED, EngineCase, Signatory, doctor_message

OPENSSL = EngineCase("openssl", "rsa", {"md": "sha256"}, "rsa-sha256")
CRYPTOGRAPHY = EngineCase("cryptography", "rsa", {"md": "sha256"}, "rsa-sha256")


def verify(pki: Pki, raw: bytes, **bundle_options: object) -> Verdict:
    return verify_message(raw, StaticTrust((bundle_for(pki, **bundle_options),)), NOW)


def _fingerprint(text: str) -> str:
    return text.replace(":", "").lower()


@pytest.mark.parametrize("case", SUPPORTED, ids=lambda c: c.id)
def test_every_engine_and_algorithm_is_accepted(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    verdict = verify(pki, signatory.sign(case))
    assert (verdict.decision, verdict.code) == (Decision.ACCEPT, Reason.OK), verdict.detail
    signer_cert = pki.signers[case.signer].issued.cert
    assert verdict.signer is not None
    assert verdict.signer.national_id == DOCTOR_ID
    assert verdict.signer.email == DOCTOR
    assert _fingerprint(verdict.signer.fingerprint_sha256) == hashlib.sha256(
        signer_cert.public_bytes(serialization.Encoding.DER)
    ).hexdigest()
    assert DOCTOR_ID in verdict.signer.subject
    assert verdict.bundle == "igc-sante-test"


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_accepted_again_with_the_sender_case_changed_in_the_domain(
    case: EngineCase, signatory: Signatory, pki: Pki
) -> None:
    # Domains compare case-insensitively: the same signer, an upper-case domain.
    message = doctor_message(sender="Dr Jean Dupont <jean.dupont@MEDECIN.mssante.fr>")
    verdict = verify(pki, signatory.sign(case, message))
    assert verdict.code is Reason.OK, verdict.detail


def test_cryptography_multipart_with_embedded_content_is_malformed(signatory: Signatory, pki: Pki) -> None:
    # cryptography's S/MIME encoding of a non-detached signature: the content
    # travels twice, as the first part and inside the signature. Which copy
    # would a reader show? Neither is trusted.
    case = EngineCase("cryptography", "rsa", {"embedded_in_multipart": True}, "rsa-embedded")
    verdict = verify(pki, signatory.sign(case))
    assert verdict.code is Reason.MALFORMED, verdict.detail


def test_unsigned(pki: Pki) -> None:
    assert verify(pki, doctor_message()).code is Reason.UNSIGNED


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_signature_invalid_when_the_body_changes(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    tampered = signatory.sign(case).replace(b"compte rendu.", b"compte rendu!", 1)
    verdict = verify(pki, tampered)
    assert verdict.code is Reason.SIGNATURE_INVALID, verdict.detail


def test_signature_invalid_inside_an_opaque_signature(signatory: Signatory, pki: Pki) -> None:
    case = EngineCase("openssl", "rsa", {"opaque": True}, "rsa-opaque")
    signed = signatory.sign(case)
    head, _, body = signed.partition(b"\r\n\r\n")
    der = bytearray(base64.b64decode(body))
    at = bytes(der).index(b"compte rendu.")
    der[at] ^= 0x20
    tampered = head + b"\r\n\r\n" + engines.base64_lines(bytes(der))
    assert verify(pki, tampered).code is Reason.SIGNATURE_INVALID


@pytest.mark.parametrize("cut", [1, 40, 400], ids=lambda n: f"cut{n}")
def test_malformed_when_the_signature_is_truncated(cut: int, signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(OPENSSL)
    head, sep, rest = signed.partition(b'filename="smime.p7s"\r\n\r\n')
    der = base64.b64decode(rest.split(b"\r\n\r\n")[0].replace(b"\r\n", b""))
    tail = rest[rest.index(b"\r\n------") :]
    truncated = head + sep + engines.base64_lines(der[: len(der) - cut]) + tail
    verdict = verify(pki, truncated)
    assert verdict.code is Reason.MALFORMED, verdict.detail


def test_malformed_when_the_signature_part_is_not_cms(signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(OPENSSL)
    head, sep, rest = signed.partition(b'filename="smime.p7s"\r\n\r\n')
    tail = rest[rest.index(b"\r\n------") :]
    garbage = head + sep + base64.b64encode(b"not a CMS structure at all") + tail
    assert verify(pki, garbage).code is Reason.MALFORMED


def test_signer_unknown_when_no_certificate_is_sent(signatory: Signatory, pki: Pki) -> None:
    case = EngineCase("openssl", "rsa", {"nocerts": True}, "rsa-nocerts")
    verdict = verify(pki, signatory.sign(case))
    assert verdict.code is Reason.SIGNER_UNKNOWN, verdict.detail


@pytest.mark.parametrize(
    "case",
    [
        EngineCase("openssl", "rsa", {"md": "sha1"}, "rsa-sha1"),
        EngineCase("nss", "rsa", {"md": "SHA1"}, "rsa-sha1"),
        EngineCase("gpgsm", "rsa", {"md": "sha1"}, "rsa-sha1"),
        EngineCase("openssl", "rsa1024", {"md": "sha256"}, "rsa1024"),
    ],
    ids=lambda c: c.id,
)
def test_weak_algorithm(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    verdict = verify(pki, signatory.sign(case))
    assert verdict.code is Reason.WEAK_ALGORITHM, verdict.detail


@pytest.mark.parametrize("engine", [OPENSSL, CRYPTOGRAPHY], ids=lambda c: c.id)
@pytest.mark.parametrize(
    ("signer", "reason"),
    [
        ("foreign", Reason.UNTRUSTED_ISSUER),
        ("expired", Reason.CERTIFICATE_EXPIRED),
        ("not-yet-valid", Reason.CERTIFICATE_NOT_YET_VALID),
        ("revoked", Reason.CERTIFICATE_REVOKED),
        ("encrypt-only", Reason.KEY_USAGE),
    ],
)
def test_signer_certificate_problems(
    engine: EngineCase, signer: str, reason: Reason, signatory: Signatory, pki: Pki
) -> None:
    verdict = verify(pki, signatory.sign(engine, signer=signer))
    assert verdict.code is reason, verdict.detail
    assert verdict.decision is Decision.REJECT
    assert verdict.signer is not None and verdict.signer.national_id == DOCTOR_ID


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_revoked_signer_from_every_engine(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    verdict = verify(pki, signatory.sign(case, signer="revoked"))
    assert verdict.code is Reason.CERTIFICATE_REVOKED, verdict.detail


def test_revocation_unknown_without_crls_under_hard_revocation(signatory: Signatory, pki: Pki) -> None:
    verdict = verify(pki, signatory.sign(OPENSSL), crls=())
    assert verdict.code is Reason.REVOCATION_UNKNOWN, verdict.detail


def test_revocation_unknown_when_the_crl_is_stale(signatory: Signatory, pki: Pki) -> None:
    stale = (
        make_crl(pki.root, next_update=dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)),
        make_crl(pki.intermediate, next_update=dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)),
    )
    verdict = verify(pki, signatory.sign(OPENSSL), crls=stale)
    assert verdict.code is Reason.REVOCATION_UNKNOWN, verdict.detail


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_policy_mismatch(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    required = frozenset({IGC_SANTE_TEST_POLICY})
    assert verify(pki, signatory.sign(case), required_policies=required).code is Reason.OK
    verdict = verify(pki, signatory.sign(case, signer="no-policy"), required_policies=required)
    assert verdict.code is Reason.POLICY_MISMATCH, verdict.detail


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_address_mismatch(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    message = doctor_message(sender="Dr Jean Dupont <secretariat@medecin.mssante.fr>")
    verdict = verify(pki, signatory.sign(case, message))
    assert verdict.code is Reason.ADDRESS_MISMATCH, verdict.detail
    assert verdict.signer is not None and verdict.signer.email == DOCTOR


def test_not_professional_unless_the_bundle_allows_it(signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(OPENSSL, signer="direct")
    verdict = verify(pki, signed)
    assert verdict.code is Reason.NOT_PROFESSIONAL, verdict.detail
    assert verify(pki, signed, require_professional=False).code is Reason.OK


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_directory_mismatch(case: EngineCase, signatory: Signatory, pki: Pki) -> None:
    signed = signatory.sign(case)
    bundle = bundle_for(pki)
    agreeing = StaticTrust((bundle,), {DOCTOR: DOCTOR_ID})
    assert verify_message(signed, agreeing, NOW).code is Reason.OK
    disagreeing = StaticTrust((bundle,), {DOCTOR: "810009999999"})
    verdict = verify_message(signed, disagreeing, NOW)
    assert verdict.code is Reason.DIRECTORY_MISMATCH, verdict.detail


def test_precedence_expired_and_wrong_address_reports_expiry(signatory: Signatory, pki: Pki) -> None:
    message = doctor_message(sender="someone.else@medecin.mssante.fr")
    verdict = verify(pki, signatory.sign(OPENSSL, message, signer="expired"))
    assert verdict.code is Reason.CERTIFICATE_EXPIRED


def test_an_openssl_envelope_with_a_broken_gcm_tag_is_decryption_failed(tmp_path) -> None:
    ours = devpki.make_leaf(devpki.make_ca("AC ENVELOPES"), devpki.direct_subject("x"), emails=[DOCTOR], key_usage="both")
    (tmp_path / "ours.pem").write_bytes(ours.cert_pem)
    sealed = subprocess.run(
        ["openssl", "cms", "-encrypt", "-aes-256-gcm", str(tmp_path / "ours.pem")],
        input=b"Content-Type: text/plain\r\n\r\nResultats.\r\n", capture_output=True, check=True, timeout=30,
    ).stdout
    assert b"Resultats." in decrypt_message(sealed, [software_decryption_key(ours.key, ours.cert)]).message
    broken = break_mac(sealed.replace(b"\r\n", b"\n"), eol=b"\n")  # the last byte of the MAC
    with pytest.raises(Rejection) as caught:
        decrypt_message(broken, [software_decryption_key(ours.key, ours.cert)])
    assert caught.value.reason is Reason.DECRYPTION_FAILED


def test_every_reason_is_reached_in_this_module() -> None:
    # A reminder that keeps this list honest: add a test above for a new code.
    covered = {
        Reason.OK, Reason.UNSIGNED, Reason.MALFORMED, Reason.SIGNATURE_INVALID, Reason.SIGNER_UNKNOWN,
        Reason.WEAK_ALGORITHM, Reason.UNTRUSTED_ISSUER, Reason.CERTIFICATE_EXPIRED,
        Reason.CERTIFICATE_NOT_YET_VALID, Reason.CERTIFICATE_REVOKED, Reason.REVOCATION_UNKNOWN,
        Reason.KEY_USAGE, Reason.POLICY_MISMATCH, Reason.ADDRESS_MISMATCH, Reason.NOT_PROFESSIONAL,
        Reason.DIRECTORY_MISMATCH, Reason.DECRYPTION_FAILED,
    }
    assert covered == set(Reason)
