"""Outbound S/MIME encryption (RFC 8551 §3.3, RFC 5652 §6, RFC 5083, RFC 5084).

A MIME entity (signed or not) becomes the content of a CMS EnvelopedData
(AES-CBC) or AuthEnvelopedData (AES-GCM), its content-encryption key wrapped
for each recipient certificate by RSA key transport (RSA-OAEP with SHA-256 by
default, RSAES-PKCS1-v1_5 for receivers that know nothing else), each
recipient named by issuerAndSerialNumber. The result travels as
`application/pkcs7-mime`, base64, CRLF.

Pure: the random bytes (content key, IV, nonce) come from a callable that
defaults to the operating system's generator, so a test can pin them.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable, Sequence

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import Rejection
from .limits import DEFAULT_LIMITS, MessageLimits
from .reasons import Reason
from .smime_entity import base64_lines, canonical, content_entity, split_message
from .smime_sign import SigningKey, sign_message

RandomBytes = Callable[[int], bytes]

_CRLF = b"\r\n"
GCM_NONCE_BYTES = 12  # RFC 5084 §3.2 recommends 12
GCM_TAG_BYTES = 16
AES_BLOCK_BYTES = 16


class ContentCipher(StrEnum):
    """Content encryption: GCM in AuthEnvelopedData, CBC in EnvelopedData."""

    AES128_GCM = "aes128-gcm"
    AES192_GCM = "aes192-gcm"
    AES256_GCM = "aes256-gcm"
    AES128_CBC = "aes128-cbc"
    AES192_CBC = "aes192-cbc"
    AES256_CBC = "aes256-cbc"

    @property
    def oid_name(self) -> str:
        """The asn1crypto name of the algorithm identifier."""
        return self.value.replace("-", "_")

    @property
    def key_bytes(self) -> int:
        return int(self.value[3:6]) // 8

    @property
    def authenticated(self) -> bool:
        return self.value.endswith("gcm")

    @property
    def smime_type(self) -> str:
        return "authEnveloped-data" if self.authenticated else "enveloped-data"

    @classmethod
    def from_oid_name(cls, name: str) -> ContentCipher | None:
        for cipher in cls:
            if cipher.oid_name == name:
                return cipher
        return None


class TransportScheme(StrEnum):
    RSA_OAEP = "rsa-oaep"
    RSA_PKCS1V15 = "rsa-pkcs1v15"


OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class KeyTransport:
    """How a content key is wrapped for one recipient: the scheme and, for OAEP, its hashes.

    OAEP's label (pSourceFunc) is always empty: CMS never sets one (RFC 8017 A.2.1)."""

    scheme: TransportScheme = TransportScheme.RSA_OAEP
    oaep_hash: str = "sha256"
    mgf_hash: str = "sha256"

    def padding(self) -> padding.AsymmetricPadding:
        if self.scheme is TransportScheme.RSA_PKCS1V15:
            return padding.PKCS1v15()
        return padding.OAEP(padding.MGF1(OAEP_HASHES[self.mgf_hash]()), OAEP_HASHES[self.oaep_hash](), None)

    def algorithm(self) -> cms.KeyEncryptionAlgorithm:
        if self.scheme is TransportScheme.RSA_PKCS1V15:
            return cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()})
        params = algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": self.oaep_hash},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": self.mgf_hash}},
            }
        )
        return cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_oaep", "parameters": params})


OAEP_SHA256 = KeyTransport()
PKCS1V15 = KeyTransport(TransportScheme.RSA_PKCS1V15)


@dataclass(frozen=True, slots=True)
class Recipient:
    certificate: x509.Certificate
    transport: KeyTransport = OAEP_SHA256


class GcmParameters(core.Sequence):
    """RFC 5084 §3.2 GCMParameters (asn1crypto has no spec for them)."""

    _fields = [("aes_nonce", core.OctetString), ("aes_icvlen", core.Integer, {"default": 12})]


# --- CMS --------------------------------------------------------------------


def build_enveloped(
    content: bytes, recipients: Sequence[Recipient], cipher: ContentCipher, random_bytes: RandomBytes = os.urandom
) -> bytes:
    """DER of a CMS ContentInfo: AuthEnvelopedData for a GCM cipher, EnvelopedData for CBC."""
    if not recipients:
        raise ValueError("at least one recipient is needed")
    key = random_bytes(cipher.key_bytes)
    infos = [_recipient_info(r, key) for r in recipients]
    if cipher.authenticated:
        return _auth_enveloped(content, infos, cipher, key, random_bytes)
    return _enveloped(content, infos, cipher, key, random_bytes)


def _recipient_info(recipient: Recipient, key: bytes) -> cms.RecipientInfo:
    public = recipient.certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("only RSA recipient certificates are supported for key transport")
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": "v0",  # issuerAndSerialNumber (RFC 5652 §6.2.1)
            "rid": cms.RecipientIdentifier.load(_recipient_identifier(recipient.certificate.public_bytes(Encoding.DER))),
            "key_encryption_algorithm": cms.KeyEncryptionAlgorithm.load(_transport_algorithm(recipient.transport)),
            "encrypted_key": public.encrypt(key, recipient.transport.padding()),
        }
    )
    return cms.RecipientInfo({"ktri": ktri})


# The constant parts are encoded once: building asn1crypto values from dicts
# costs more than the RSA encryption itself.
@functools.lru_cache(maxsize=1024)
def _recipient_identifier(certificate_der: bytes) -> bytes:
    cert = asn1_x509.Certificate.load(certificate_der)
    return cms.RecipientIdentifier(
        {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
    ).dump()


@functools.cache
def _transport_algorithm(transport: KeyTransport) -> bytes:
    return transport.algorithm().dump()


def _enveloped(
    content: bytes, infos: list[cms.RecipientInfo], cipher: ContentCipher, key: bytes, random_bytes: RandomBytes
) -> bytes:
    iv = random_bytes(AES_BLOCK_BYTES)
    padder = sym_padding.PKCS7(AES_BLOCK_BYTES * 8).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    data = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": infos,
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": cipher.oid_name, "parameters": core.OctetString(iv)},
                "encrypted_content": encrypted,
            },
        }
    )
    return cms.ContentInfo({"content_type": "enveloped_data", "content": data}).dump()


def _auth_enveloped(
    content: bytes, infos: list[cms.RecipientInfo], cipher: ContentCipher, key: bytes, random_bytes: RandomBytes
) -> bytes:
    nonce = random_bytes(GCM_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, content, None)  # no authAttrs, so no additional data
    params = GcmParameters({"aes_nonce": nonce, "aes_icvlen": GCM_TAG_BYTES})
    data = cms.AuthEnvelopedData(
        {
            "version": "v0",
            "recipient_infos": infos,
            "auth_encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": cipher.oid_name, "parameters": params},
                "encrypted_content": sealed[:-GCM_TAG_BYTES],
            },
            "mac": sealed[-GCM_TAG_BYTES:],
        }
    )
    return cms.ContentInfo({"content_type": "authenticated_enveloped_data", "content": data}).dump()


# --- MIME -------------------------------------------------------------------


def encrypt_entity(
    entity: bytes, recipients: Sequence[Recipient], cipher: ContentCipher, random_bytes: RandomBytes = os.urandom
) -> bytes:
    """The application/pkcs7-mime entity (header fields, empty line, base64 body) enclosing entity,
    which is in canonical form already (CRLF line endings, RFC 8551 §3.1.1)."""
    der = build_enveloped(entity, recipients, cipher, random_bytes)
    header = [
        b"Content-Type: application/pkcs7-mime; smime-type=" + cipher.smime_type.encode() + b';',
        b' name="smime.p7m"',
        b"Content-Transfer-Encoding: base64",
        b'Content-Disposition: attachment; filename="smime.p7m"',
        b"Content-Description: S/MIME Encrypted Message",
    ]
    return _CRLF.join([*header, b"", *base64_lines(der)]) + _CRLF


def encrypt_message(
    raw: bytes,
    recipients: Sequence[Recipient],
    cipher: ContentCipher = ContentCipher.AES256_GCM,
    limits: MessageLimits = DEFAULT_LIMITS,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """The message with its MIME content encrypted; the RFC 5322 fields (From, To, Subject, ...)
    stay outside, readable by the transport, as RFC 8551 §3.1 describes."""
    if len(raw) > limits.max_message_bytes:
        raise Rejection(Reason.MALFORMED, f"message exceeds {limits.max_message_bytes} bytes")
    outer, content_fields, body = split_message(canonical(raw), limits)
    inner = content_entity(content_fields, body)
    return _CRLF.join([*outer, b"MIME-Version: 1.0"]) + _CRLF + encrypt_entity(inner, recipients, cipher, random_bytes)


def sign_then_encrypt(
    raw: bytes,
    key: SigningKey,
    signing_time: dt.datetime,
    recipients: Sequence[Recipient],
    cipher: ContentCipher = ContentCipher.AES256_GCM,
    limits: MessageLimits = DEFAULT_LIMITS,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """multipart/signed inside application/pkcs7-mime: signing first keeps the signature
    over the clear content, so the receiver verifies what it reads (RFC 8551 §3.7)."""
    return encrypt_message(sign_message(raw, key, signing_time, limits), recipients, cipher, limits, random_bytes)


def choose_cipher(receiver_supports_gcm: bool) -> ContentCipher:
    """AES-256-GCM for receivers that announced it (e.g. in their smimeCapabilities), else AES-256-CBC."""
    return ContentCipher.AES256_GCM if receiver_supports_gcm else ContentCipher.AES256_CBC
