"""Messages signed through the token pass the relay's own verification core."""

from __future__ import annotations

import pytest

from keys_support import EC_TOKEN, KEY_LABEL, MESSAGE, ORG_ADDRESS, RSA_TOKEN, SIGNING_TIME, org_trust
from relay.core.reasons import Reason
from relay.core.smime_sign import sign_message
from relay.core.trustview import StaticTrust
from relay.core.verify import verify_message
from relay.keys.config import KeyConfig
from relay.keys.pkcs11_token import Pkcs11Token
from relay.keys.token_keys import load_token_key


@pytest.fixture(scope="module")
def trust(pki) -> StaticTrust:
    return org_trust(pki.root, pki.ca)


@pytest.mark.parametrize("token_label, pss", [(RSA_TOKEN, False), (RSA_TOKEN, True), (EC_TOKEN, False)])
def test_verify_message_accepts_what_the_token_signed(hsm, trust, token_label, pss):
    with Pkcs11Token(hsm.config(token_label)) as token:
        signed = sign_message(MESSAGE, load_token_key(token, KeyConfig(KEY_LABEL, rsa_pss=pss)), SIGNING_TIME)
    verdict = verify_message(signed, trust, SIGNING_TIME)
    assert verdict.accepted, verdict.detail
    assert verdict.signer is not None and verdict.signer.email == ORG_ADDRESS
    tampered = signed.replace(b"R=C3=A9sultats normaux", b"R=C3=A9sultats anormaux")
    assert verify_message(tampered, trust, SIGNING_TIME).code is Reason.SIGNATURE_INVALID
