"""Encryption: openssl opens what the relay produces, in both envelope forms and both key transports."""

from __future__ import annotations

import email
import email.policy

import pytest
from asn1crypto import cms

from crypt_support import MESSAGE, NOW, SENDER, openssl, software_decryption_key
from relay import devpki
from relay.core.smime_decrypt import decrypt_message
from relay.core.smime_encrypt import (
    OAEP_SHA256,
    PKCS1V15,
    ContentCipher,
    Recipient,
    build_enveloped,
    choose_cipher,
    encrypt_message,
    sign_then_encrypt,
)
from relay.core.trustview import StaticTrust
from relay.core.verify import verify_message
from relay.keys.software import software_key
from tests.keys.keys_support import org_trust

CIPHERS = [ContentCipher.AES256_GCM, ContentCipher.AES256_CBC]
TRANSPORTS = [pytest.param(OAEP_SHA256, id="oaep-sha256"), pytest.param(PKCS1V15, id="pkcs1v15")]


def openssl_decrypt(message: bytes, files, name: str = "recipient") -> bytes:
    done = openssl("cms", "-decrypt", "-recip", str(files / f"{name}.pem"), "-inkey", str(files / f"{name}.key"), data=message)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_openssl_decrypts_what_the_relay_encrypts(crypt_pki, cipher, transport):
    encrypted = encrypt_message(MESSAGE, [Recipient(crypt_pki.recipient.cert, transport)], cipher)
    outer = email.message_from_bytes(encrypted, policy=email.policy.compat32)
    assert outer.get_content_type() == "application/pkcs7-mime"
    assert outer.get_param("smime-type") == cipher.smime_type
    assert outer["Subject"] == "Compte rendu de consultation"  # routing fields stay outside
    assert b"R\xc3\xa9sultats" not in encrypted and b"sultats" not in encrypted
    assert b"\n" not in encrypted.replace(b"\r\n", b"")  # CRLF only
    inner = openssl_decrypt(encrypted, crypt_pki.files)
    assert inner.startswith(b"Content-Type: text/plain; charset=utf-8\r\n")
    assert b"R=C3=A9sultats normaux." in inner  # 8-bit text made 7-bit, as for signing


@pytest.mark.parametrize("cipher", CIPHERS)
def test_envelope_structure(crypt_pki, cipher):
    der = build_enveloped(b"Content-Type: text/plain\r\n\r\nx\r\n", [Recipient(crypt_pki.recipient.cert)], cipher)
    info = cms.ContentInfo.load(der)
    if cipher.authenticated:
        assert info["content_type"].native == "authenticated_enveloped_data"
        content = info["content"]["auth_encrypted_content_info"]
        assert len(info["content"]["mac"].native) == 16
    else:
        assert info["content_type"].native == "enveloped_data"
        content = info["content"]["encrypted_content_info"]
    assert content["content_encryption_algorithm"]["algorithm"].native == cipher.oid_name
    (ri,) = info["content"]["recipient_infos"]
    assert ri.name == "ktri" and ri.chosen["rid"].name == "issuer_and_serial_number"
    assert ri.chosen["rid"].chosen["serial_number"].native == crypt_pki.recipient.cert.serial_number
    params = ri.chosen["key_encryption_algorithm"]
    assert params["algorithm"].native == "rsaes_oaep"
    assert params["parameters"]["hash_algorithm"]["algorithm"].native == "sha256"


def test_every_recipient_opens_the_same_envelope(crypt_pki):
    recipients = [Recipient(crypt_pki.recipient.cert), Recipient(crypt_pki.other.cert, PKCS1V15)]
    encrypted = encrypt_message(MESSAGE, recipients, ContentCipher.AES256_GCM)
    assert openssl_decrypt(encrypted, crypt_pki.files, "recipient") == openssl_decrypt(encrypted, crypt_pki.files, "other")


@pytest.fixture(scope="module")
def trust(crypt_pki) -> StaticTrust:
    return org_trust(crypt_pki.root, crypt_pki.ca)


@pytest.mark.parametrize("cipher", CIPHERS)
def test_sign_then_encrypt_verifies_after_decryption(crypt_pki, trust, cipher):
    key = software_key(crypt_pki.sender.key, crypt_pki.sender.cert, (crypt_pki.ca.cert,))
    encrypted = sign_then_encrypt(MESSAGE, key, NOW, [Recipient(crypt_pki.recipient.cert)], cipher)
    # openssl: decrypt, then verify the multipart/signed that comes out
    inner = openssl_decrypt(encrypted, crypt_pki.files)
    assert inner.startswith(b"Content-Type: multipart/signed;")
    verified = openssl("cms", "-verify", "-CAfile", str(crypt_pki.files / "ca.pem"), data=inner)
    assert verified.returncode == 0, verified.stderr.decode()
    assert b"R=C3=A9sultats normaux." in verified.stdout
    # the relay: decrypt, then the usual verification on the rebuilt message
    decrypted = decrypt_message(encrypted, [software_decryption_key(crypt_pki.recipient)])
    assert decrypted.entity == inner
    verdict = verify_message(decrypted.message, trust, NOW)
    assert verdict.accepted, verdict.detail
    assert verdict.signer is not None and verdict.signer.email == SENDER


def test_a_pinned_random_source_gives_the_same_content_encryption(crypt_pki):
    counter = iter(range(1, 1000))

    def fixed(n: int) -> bytes:
        return bytes([next(counter)]) * n

    def content(der: bytes) -> bytes:
        return cms.ContentInfo.load(der)["content"]["auth_encrypted_content_info"]["encrypted_content"].native

    first = build_enveloped(b"x", [Recipient(crypt_pki.recipient.cert)], ContentCipher.AES128_GCM, fixed)
    counter = iter(range(1, 1000))
    second = build_enveloped(b"x", [Recipient(crypt_pki.recipient.cert)], ContentCipher.AES128_GCM, fixed)
    assert content(first) == content(second)
    assert first != second  # RSA-OAEP itself is randomised


def test_cipher_choice_and_bad_inputs(crypt_pki):
    assert choose_cipher(True) is ContentCipher.AES256_GCM
    assert choose_cipher(False) is ContentCipher.AES256_CBC
    with pytest.raises(ValueError, match="at least one recipient"):
        build_enveloped(b"x", [], ContentCipher.AES256_GCM)
    ec_leaf = devpki.make_leaf(crypt_pki.ca, crypt_pki.recipient.cert.subject, key_kind="p256")
    with pytest.raises(ValueError, match="only RSA"):
        build_enveloped(b"x", [Recipient(ec_leaf.cert)], ContentCipher.AES256_GCM)
