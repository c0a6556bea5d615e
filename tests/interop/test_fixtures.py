"""The engines' output is genuine: OpenSSL itself verifies every signed message.

If one of these fails, the fault is in the fixtures (tests/engines.py), not
in the relay, so the other interoperability tests would prove nothing.
"""

from __future__ import annotations

import pytest

from tests import engines
from tests.engines import CRLF, NOW

from .conftest import ONE_PER_ENGINE, SUPPORTED, EngineCase, Signatory, doctor_message


@pytest.mark.parametrize("case", SUPPORTED, ids=lambda c: c.id)
def test_openssl_verifies_every_engine(case: EngineCase, signatory: Signatory) -> None:
    signed = signatory.sign(case)
    assert engines.openssl_verifies(signed, signatory.pki.trusted, at=int(NOW.timestamp()))


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
