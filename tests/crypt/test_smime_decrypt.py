"""Decryption: openssl's envelopes open, failures are uniform, a mixed clear/encrypted tree is refused."""

from __future__ import annotations

import base64

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypt_support import MESSAGE, break_mac, openssl, software_decryption_key
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from relay.core.smime_decrypt import DecryptionKey, decrypt_if_encrypted, decrypt_message, is_encrypted, open_envelope, read_envelope
from relay.keys.errors import KeyErrorCode, KeyStoreError
from relay.core.smime_encrypt import OAEP_SHA256, PKCS1V15, ContentCipher, GcmParameters, Recipient, TransportScheme, encrypt_message

PLAIN = (
    b"From: Secretariat <secretariat.cardio@hopital-test.mssante.fr>\n"
    b"To: martin@medecin.mssante.fr\n"
    b"Subject: Resultats\n"
    b"Content-Type: text/plain\n"
    b"\n"
    b"Hemoglobine 14 g/dL\n"
)

OPENSSL_FORMS = {
    "aes256-cbc-pkcs1v15": (["-aes256"], ContentCipher.AES256_CBC, TransportScheme.RSA_PKCS1V15, None),
    "aes256-cbc-oaep-sha1": (
        ["-aes256", "-keyopt", "rsa_padding_mode:oaep"], ContentCipher.AES256_CBC, TransportScheme.RSA_OAEP, "sha1"
    ),
    "aes128-cbc-oaep-sha256": (
        ["-aes128", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"],
        ContentCipher.AES128_CBC, TransportScheme.RSA_OAEP, "sha256",
    ),
    "aes192-cbc-stream": (["-aes192", "-stream"], ContentCipher.AES192_CBC, TransportScheme.RSA_PKCS1V15, None),
    "aes256-gcm-pkcs1v15": (["-aes-256-gcm"], ContentCipher.AES256_GCM, TransportScheme.RSA_PKCS1V15, None),
    "aes256-gcm-oaep-sha256": (
        ["-aes-256-gcm", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"],
        ContentCipher.AES256_GCM, TransportScheme.RSA_OAEP, "sha256",
    ),
    "aes128-gcm-oaep-sha1": (
        ["-aes-128-gcm", "-keyopt", "rsa_padding_mode:oaep"], ContentCipher.AES128_GCM, TransportScheme.RSA_OAEP, "sha1"
    ),
}


def openssl_encrypt(files, options: list[str], name: str = "recipient", data: bytes = PLAIN, headers: bool = True) -> bytes:
    routing = ["-from", "secretariat.cardio@hopital-test.mssante.fr", "-to", "martin@medecin.mssante.fr", "-subject", "Resultats"]
    cipher, rest = options[:1], options[1:]
    done = openssl("cms", "-encrypt", *cipher, *(routing if headers else []), "-recip", str(files / f"{name}.pem"), *rest, data=data)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@pytest.mark.parametrize("form", sorted(OPENSSL_FORMS))
def test_decrypts_openssl_envelopes(crypt_pki, form):
    options, cipher, scheme, oaep_hash = OPENSSL_FORMS[form]
    encrypted = openssl_encrypt(crypt_pki.files, options)
    assert is_encrypted(encrypted)
    decrypted = decrypt_message(encrypted, [software_decryption_key(crypt_pki.other), software_decryption_key(crypt_pki.recipient)])
    assert decrypted.cipher is cipher
    assert decrypted.transport.scheme is scheme
    if oaep_hash:
        assert decrypted.transport.oaep_hash == oaep_hash
    assert decrypted.recipient == crypt_pki.recipient.cert
    assert decrypted.entity.replace(b"\r\n", b"\n") == PLAIN
    # One copy of each field: the outer ones (openssl wrote From/To/Subject outside too), then the entity's own.
    assert decrypted.message == (
        b"To: martin@medecin.mssante.fr\r\n"
        b"From: secretariat.cardio@hopital-test.mssante.fr\r\n"
        b"Subject: Resultats\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"Hemoglobine 14 g/dL\r\n"
    )


def test_recipient_named_by_subject_key_identifier(crypt_pki):
    encrypted = openssl_encrypt(crypt_pki.files, ["-aes256", "-keyid"])
    der = _envelope_der(encrypted)
    (ri,) = cms.ContentInfo.load(der)["content"]["recipient_infos"]
    assert ri.chosen["rid"].name == "subject_key_identifier"
    assert decrypt_message(encrypted, [software_decryption_key(crypt_pki.recipient)]).entity.endswith(b"14 g/dL\r\n")


def test_an_entity_without_routing_fields_keeps_its_own(crypt_pki):
    encrypted = openssl_encrypt(crypt_pki.files, ["-aes-256-gcm"], headers=False)
    message = decrypt_message(encrypted, [software_decryption_key(crypt_pki.recipient)]).message
    assert message.startswith(b"MIME-Version: 1.0\r\nFrom: Secretariat <secretariat.cardio@hopital-test.mssante.fr>\r\n")


def test_not_addressed_to_us(crypt_pki):
    encrypted = openssl_encrypt(crypt_pki.files, ["-aes256"], name="other")
    with pytest.raises(Rejection, match="addressed to none of our certificates") as caught:
        decrypt_message(encrypted, [software_decryption_key(crypt_pki.recipient)])
    assert caught.value.reason is Reason.MALFORMED


def _envelope_der(message: bytes) -> bytes:
    return base64.b64decode(message.split(b"\n\n", 1)[-1] if b"\r\n\r\n" not in message else message.split(b"\r\n\r\n", 1)[1])


def _decryption_failure(crypt_pki, encrypted: bytes, key: DecryptionKey | None = None) -> Rejection:
    with pytest.raises(Rejection) as caught:
        decrypt_message(encrypted, [key or software_decryption_key(crypt_pki.recipient)])
    assert caught.value.reason is Reason.DECRYPTION_FAILED
    return caught.value


@pytest.mark.parametrize("cipher", [ContentCipher.AES256_GCM, ContentCipher.AES256_CBC])
def test_unwrap_and_content_failures_look_the_same(crypt_pki, cipher):
    """A PKCS#1 v1.5 key that does not open, a key of the wrong size and a content that does not
    decrypt all end in the same rejection, after a content decryption with a random key."""
    encrypted = encrypt_message(MESSAGE, [Recipient(crypt_pki.recipient.cert, PKCS1V15)], cipher)
    good = software_decryption_key(crypt_pki.recipient)
    calls: list[int] = []

    def refusing(encrypted_key: bytes, transport) -> bytes:
        calls.append(len(encrypted_key))
        raise ValueError("padding check failed")

    def wrong_size(encrypted_key: bytes, transport) -> bytes:
        return good.decrypt(encrypted_key, transport)[:16]

    unwrap = _decryption_failure(crypt_pki, encrypted, DecryptionKey(crypt_pki.recipient.cert, refusing))
    size = _decryption_failure(crypt_pki, encrypted, DecryptionKey(crypt_pki.recipient.cert, wrong_size))
    tampered = _tamper_content(encrypted, cipher)
    content = _decryption_failure(crypt_pki, tampered)
    assert calls == [256]
    assert unwrap.detail == size.detail == content.detail == "the message cannot be decrypted"


def test_a_random_key_replaces_a_failed_unwrap(crypt_pki):
    envelope = read_envelope(_envelope_der(encrypt_message(MESSAGE, [Recipient(crypt_pki.recipient.cert)], ContentCipher.AES256_GCM)))
    drawn: list[int] = []

    def random_bytes(n: int) -> bytes:
        drawn.append(n)
        return bytes(n)

    def refusing(encrypted_key: bytes, transport) -> bytes:
        raise ValueError("decryption error")

    with pytest.raises(Rejection, match="cannot be decrypted"):
        open_envelope(envelope, [DecryptionKey(crypt_pki.recipient.cert, refusing)], random_bytes)
    assert drawn == [32]
    content, _, _ = open_envelope(envelope, [software_decryption_key(crypt_pki.recipient)], random_bytes)
    assert drawn == [32, 32]  # drawn on success too: both paths do the same work
    assert content.startswith(b"Content-Type: text/plain")


def _tamper_content(message: bytes, cipher: ContentCipher) -> bytes:
    head, _, body = message.partition(b"\r\n\r\n")
    der = bytearray(base64.b64decode(body))
    if cipher.authenticated:
        der[-40] ^= 0x01  # inside the encrypted content (the tag follows it)
    else:
        # The last byte of the next-to-last block: flips the padding length beyond 16,
        # so the padding check fails for certain (elsewhere CBC would just yield garbage).
        der[-17] ^= 0x80
    return head + b"\r\n\r\n" + base64.encodebytes(bytes(der)).replace(b"\n", b"\r\n")


def test_gcm_tag_is_checked(crypt_pki):
    encrypted = encrypt_message(MESSAGE, [Recipient(crypt_pki.recipient.cert)], ContentCipher.AES256_GCM)
    forged = break_mac(encrypted, 0x80)  # last byte of the mac
    assert _decryption_failure(crypt_pki, forged).detail == "the message cannot be decrypted"


def test_an_encrypted_part_inside_a_clear_message_is_refused(crypt_pki):
    encrypted = openssl_encrypt(crypt_pki.files, ["-aes-256-gcm"], headers=False)
    part = encrypted.replace(b"MIME-Version: 1.0\n", b"")
    mixed = (
        b"From: attacker@example.test\r\nTo: martin@medecin.mssante.fr\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/html\r\n\r\n<img src=\"http://example.test/\r\n"
        b"--b1\r\n" + part.replace(b"\n", b"\r\n") + b"\r\n--b1--\r\n"
    )
    with pytest.raises(Rejection, match="inside a clear message") as caught:
        is_encrypted(mixed)
    assert caught.value.reason is Reason.MALFORMED
    with pytest.raises(Rejection, match="inside a clear message"):
        decrypt_message(mixed, [software_decryption_key(crypt_pki.recipient)])


def test_clear_and_signed_messages_are_not_envelopes(crypt_pki):
    assert not is_encrypted(MESSAGE)
    with pytest.raises(Rejection, match="not an S/MIME envelope"):
        decrypt_message(MESSAGE, [software_decryption_key(crypt_pki.recipient)])
    signed = openssl(
        "cms", "-sign", "-nodetach", "-signer", str(crypt_pki.files / "sender.pem"),
        "-inkey", str(crypt_pki.files / "sender.key"), data=PLAIN,
    ).stdout
    assert b"smime-type=signed-data" in signed
    assert not is_encrypted(signed)
    # an envelope label on signed data is caught by the CMS content type
    relabelled = signed.replace(b"smime-type=signed-data", b"smime-type=enveloped-data")
    with pytest.raises(Rejection, match="not an envelope"):
        decrypt_message(relabelled, [software_decryption_key(crypt_pki.recipient)])


def test_weak_content_encryption_is_named(crypt_pki):
    encrypted = openssl_encrypt(crypt_pki.files, ["-des3"])
    with pytest.raises(Rejection, match="tripledes") as caught:
        decrypt_message(encrypted, [software_decryption_key(crypt_pki.recipient)])
    assert caught.value.reason is Reason.WEAK_ALGORITHM


@pytest.mark.parametrize(
    "body, detail",
    [
        (b"bm90IENNUw==\r\n", "unreadable CMS envelope"),
        (b"!!!!\r\n", "invalid base64"),
        (b"", "empty S/MIME envelope"),
    ],
)
def test_garbage_envelopes(crypt_pki, body, detail):
    message = (
        b"From: a@example.test\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body
    )
    with pytest.raises(Rejection, match=detail) as caught:
        decrypt_message(message, [software_decryption_key(crypt_pki.recipient)])
    assert caught.value.reason is Reason.MALFORMED


@pytest.fixture(scope="module")
def sample(crypt_pki) -> bytes:
    return encrypt_message(MESSAGE, [Recipient(crypt_pki.recipient.cert)], ContentCipher.AES128_GCM)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_envelopes_only_ever_raise_rejection(crypt_pki, sample, data):
    head, _, body = sample.partition(b"\r\n\r\n")
    der = bytearray(base64.b64decode(body))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(der) - 1))
        der[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(der)))
    mutated = head + b"\r\n\r\n" + base64.encodebytes(bytes(der[:cut])).replace(b"\n", b"\r\n")
    try:
        decrypted = decrypt_message(mutated, [software_decryption_key(crypt_pki.recipient)])
    except Rejection as rejection:
        assert rejection.reason in (Reason.MALFORMED, Reason.DECRYPTION_FAILED, Reason.WEAK_ALGORITHM)
    else:
        assert decrypted.entity.startswith(b"Content-Type: text/plain")  # only mutations outside what is authenticated


def test_the_keys_are_asked_for_only_once_the_envelope_reads(sample):
    asked = []

    def token_down() -> list[DecryptionKey]:
        asked.append(True)
        raise KeyStoreError(KeyErrorCode.SESSION_LOST, "the token stayed unreachable")

    head, _, _ = sample.partition(b"\r\n\r\n")
    with pytest.raises(Rejection) as caught:
        decrypt_if_encrypted(head + b"\r\n\r\nbm90IENNUw==\r\n", token_down)
    assert caught.value.reason is Reason.MALFORMED and asked == []  # refused for good, not deferred
    with pytest.raises(KeyStoreError):  # a readable envelope waits for the token (a deferral upstream)
        decrypt_if_encrypted(sample, token_down)
    assert asked == [True]


def test_an_envelope_without_smime_type_is_known_by_its_name(crypt_pki):
    encrypted = openssl_encrypt(crypt_pki.files, ["-aes256"])
    assert b"smime-type=enveloped-data; " in encrypted
    untyped = encrypted.replace(b"smime-type=enveloped-data; ", b"")
    assert is_encrypted(untyped)
    assert decrypt_message(untyped, [software_decryption_key(crypt_pki.recipient)]).entity.endswith(b"14 g/dL\r\n")


def test_authenticated_attributes_are_additional_data(crypt_pki):
    """RFC 5083 §2.1: authAttrs, DER-encoded as a SET OF, are GCM's additional data."""
    key, nonce, entity = bytes(range(32)), bytes(12), b"Content-Type: text/plain\r\n\r\nsigned off\r\n"
    attrs = cms.CMSAttributes([{"type": "content_type", "values": ["data"]}])
    sealed = AESGCM(key).encrypt(nonce, entity, attrs.dump())
    cert = asn1_x509.Certificate.load(crypt_pki.recipient.cert.public_bytes(Encoding.DER))
    ktri = {
        "version": "v0",
        "rid": {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}},
        "key_encryption_algorithm": OAEP_SHA256.algorithm(),
        "encrypted_key": crypt_pki.recipient.cert.public_key().encrypt(key, OAEP_SHA256.padding()),
    }

    def envelope(mac: bytes) -> bytes:
        data = cms.AuthEnvelopedData({
            "version": "v0",
            "recipient_infos": [cms.RecipientInfo({"ktri": ktri})],
            "auth_encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {
                    "algorithm": "aes256_gcm", "parameters": GcmParameters({"aes_nonce": nonce, "aes_icvlen": 16}),
                },
                "encrypted_content": sealed[:-16],
            },
            "auth_attrs": attrs,
            "mac": mac,
        })
        return cms.ContentInfo({"content_type": "authenticated_enveloped_data", "content": data}).dump()

    keys = [software_decryption_key(crypt_pki.recipient)]
    content, _, _ = open_envelope(read_envelope(envelope(sealed[-16:])), keys)
    assert content == entity
    with pytest.raises(Rejection, match="cannot be decrypted"):
        open_envelope(read_envelope(envelope(bytes(16))), keys)
