"""The engines' output is genuine: OpenSSL itself verifies every signed message.

If one of these fails, the fault is in the fixtures (tests/engines.py), not
in the relay, so the other interoperability tests would prove nothing.
"""

from __future__ import annotations

import email
import email.policy

import pytest
from asn1crypto import cms as asn1_cms

from tests import engines
from tests.engines import CRLF, NOW

from .conftest import ONE_PER_ENGINE, SUPPORTED, EngineCase, Signatory, doctor_message


@pytest.mark.parametrize("case", SUPPORTED, ids=lambda c: c.id)
def test_openssl_verifies_every_engine(case: EngineCase, signatory: Signatory) -> None:
    signed = signatory.sign(case)
    assert engines.openssl_verifies(signed, signatory.pki.trusted, at=int(NOW.timestamp()))


def _signed_data(message: bytes) -> asn1_cms.SignedData:
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    part = parsed.get_payload()[1] if parsed.is_multipart() else parsed
    return asn1_cms.ContentInfo.load(part.get_payload(decode=True))["content"]


@pytest.mark.parametrize("case", [c for c in SUPPORTED if "md" in c.options], ids=lambda c: c.id)
def test_engines_use_the_digest_asked_for(case: EngineCase, signatory: Signatory) -> None:
    signed_data = _signed_data(signatory.sign(case))
    [info] = signed_data["signer_infos"]
    assert info["digest_algorithm"]["algorithm"].native == case.options["md"].lower()


@pytest.mark.parametrize(
    ("case", "sid"),
    [
        (EngineCase("openssl", "rsa", {"keyid": True}, "rsa-keyid"), "subject_key_identifier"),
        (EngineCase("openssl", "rsa", {"md": "sha256"}, "rsa-sha256"), "issuer_and_serial_number"),
    ],
    ids=lambda v: getattr(v, "id", v),
)
def test_openssl_names_the_signer_as_asked(case: EngineCase, sid: str, signatory: Signatory) -> None:
    [info] = _signed_data(signatory.sign(case))["signer_infos"]
    assert info["sid"].name == sid


@pytest.mark.parametrize("case", [c for c in SUPPORTED if "pss_saltlen" in c.options], ids=lambda c: c.id)
def test_openssl_pss_uses_the_salt_length_asked_for(case: EngineCase, signatory: Signatory) -> None:
    [info] = _signed_data(signatory.sign(case))["signer_infos"]
    algorithm = info["signature_algorithm"]
    assert algorithm["algorithm"].native == "rsassa_pss"
    assert algorithm["parameters"]["salt_length"].native == case.options["pss_saltlen"]


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_openssl_refuses_a_flipped_body(case: EngineCase, signatory: Signatory) -> None:
    signed = signatory.sign(case)
    tampered = signed.replace(b"compte rendu.", b"compte rendu!", 1)
    assert tampered != signed
    assert not engines.openssl_verifies(tampered, signatory.pki.trusted, at=int(NOW.timestamp()))


@pytest.mark.parametrize("case", ONE_PER_ENGINE, ids=lambda c: c.id)
def test_signed_messages_travel_with_crlf_only(case: EngineCase, signatory: Signatory) -> None:
    signed = signatory.sign(case)
    assert b"\n" not in signed.replace(CRLF, b"")
    assert signed.startswith(b"From: Dr Jean Dupont <jean.dupont@medecin.mssante.fr>\r\n")


def test_split_message_keeps_content_fields_inside() -> None:
    outer, entity = engines.split_message(doctor_message())
    assert b"Content-Type: text/plain" in entity and b"Content-Type" not in outer
    assert outer.startswith(b"From: ") and b"Subject: Compte rendu\r\n" in outer
    assert entity.endswith(b"veuillez trouver le compte rendu.\r\n")
