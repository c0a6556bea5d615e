"""Inbound S/MIME decryption (RFC 8551 §3.3, RFC 5652 §6, RFC 5083, RFC 5084).

Only a message whose root entity is `application/pkcs7-mime` enveloped-data
or authEnveloped-data is decrypted. An encrypted part deeper in a multipart
tree is refused: a reader would show decrypted text beside text an attacker
added around it (EFAIL), so such a message is never opened.

The key-transport step is a callable handed in by the caller, so the private
key can stay in a token; it raises ValueError when the encrypted key does not
open. Any unwrap failure is replaced by a random content key and reported as
the same failure as a content that does not decrypt, after the same work: a
PKCS#1 v1.5 receiver must not tell a forger which guesses had valid padding
(Bleichenbacher; RFC 3218 §2.3.2).

The result is a clean message: the outer RFC 5322 fields and the decrypted
entity, never a tree that mixes encrypted and clear parts. Verification of an
inner signature then proceeds on it as on any message.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import Rejection
from .limits import DEFAULT_LIMITS, MessageLimits
from .linebreaks import prepare
from .mimetree import Entity, base64_body, read_entity, walk
from .reasons import Reason
from .smime_encrypt import (
    AES_BLOCK_BYTES,
    OAEP_HASHES,
    PKCS1V15,
    ContentCipher,
    GcmParameters,
    KeyTransport,
    RandomBytes,
    TransportScheme,
)
from .smime_entity import field_name, header_fields, is_content_field

# decrypt(encrypted_key, transport) -> content key; raises ValueError when it does not open.
DecryptFunction = Callable[[bytes, KeyTransport], bytes]


@dataclass(frozen=True, slots=True)
class DecryptionKey:
    certificate: x509.Certificate
    decrypt: DecryptFunction


@dataclass(frozen=True, slots=True)
class Decrypted:
    message: bytes  # the outer RFC 5322 fields followed by the decrypted entity, CRLF
    entity: bytes  # the decrypted MIME entity exactly as it came out of the envelope
    cipher: ContentCipher
    transport: KeyTransport
    recipient: x509.Certificate  # which of our certificates the message was addressed to


_OPAQUE_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_ENCRYPTED_KINDS = {"enveloped-data": "enveloped_data", "authenveloped-data": "authenticated_enveloped_data"}
_WEAK_CIPHERS = frozenset({"des", "tripledes_3key", "rc2", "rc4", "rc5"})
_CRLF = b"\r\n"
_FAILED = "the message cannot be decrypted"  # one text for every failure an attacker could provoke


# Any sign of an S/MIME envelope somewhere in the data: without one, no strict parse is needed.
_MAYBE_ENVELOPE = re.compile(rb"pkcs7-mime|\.p7m", re.IGNORECASE)


def may_hold_envelope(raw: bytes) -> bool:
    """False when no entity of the message can be an S/MIME envelope (a byte scan, no parse)."""
    return _MAYBE_ENVELOPE.search(raw) is not None


def is_encrypted(raw: bytes, limits: MessageLimits = DEFAULT_LIMITS) -> bool:
    """True when the root entity is an S/MIME envelope; Rejection(malformed) when an
    envelope sits anywhere else in the tree (EFAIL), False for a clear message."""
    data = prepare(raw, limits)
    return _root_is_envelope(data, read_entity(data, 0, len(data), 0, limits), limits)


def decrypt_message(
    raw: bytes,
    keys: Sequence[DecryptionKey],
    limits: MessageLimits = DEFAULT_LIMITS,
    random_bytes: RandomBytes = os.urandom,
) -> Decrypted:
    """Decrypt a message whose root is an envelope addressed to one of keys."""
    decrypted = decrypt_if_encrypted(raw, lambda: keys, limits, random_bytes)
    if decrypted is None:
        raise Rejection(Reason.MALFORMED, "the message root is not an S/MIME envelope")
    return decrypted


def decrypt_if_encrypted(
    raw: bytes,
    keys: Callable[[], Sequence[DecryptionKey]],
    limits: MessageLimits = DEFAULT_LIMITS,
    random_bytes: RandomBytes = os.urandom,
) -> Decrypted | None:
    """None for a clear message (as is_encrypted is False), else decrypt_message's result from
    one parse; keys is called only for a well-formed envelope."""
    data = prepare(raw, limits)
    root = read_entity(data, 0, len(data), 0, limits)
    if not _root_is_envelope(data, root, limits):
        return None
    envelope = read_envelope(base64_body(data, root, "S/MIME envelope"))
    expected = _envelope_kind(root)
    if expected and expected != envelope.content_type:
        raise Rejection(Reason.MALFORMED, "smime-type differs from the CMS content type")
    # Keys only for a well-formed envelope: a malformed one is refused as such even
    # while the token cannot be reached (a permanent refusal, not a deferral).
    entity, key, transport = open_envelope(envelope, keys(), random_bytes)
    return Decrypted(_rebuild(data[: root.body_start], entity, limits), entity, envelope.cipher, transport, key.certificate)


def _root_is_envelope(data: bytes, root: Entity, limits: MessageLimits) -> bool:
    if _envelope_kind(root) is not None:
        return True
    for entity in walk(data, root, limits):
        if entity is not root and _envelope_kind(entity) is not None:
            raise Rejection(Reason.MALFORMED, "an encrypted part inside a clear message is never decrypted")
    return False


def _envelope_kind(entity: Entity) -> str | None:
    """The CMS content type an entity announces as an envelope, "" when it does not say which."""
    if entity.content_type.mime_type not in _OPAQUE_TYPES:
        return None
    smime_type = entity.content_type.param("smime-type")
    if smime_type is None:
        name = (entity.content_type.param("name") or "").lower()
        return "" if name.endswith(".p7m") else None  # pre-RFC 5751 agents: the file name says it
    return _ENCRYPTED_KINDS.get(smime_type.lower())


# --- CMS --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Recipient:
    issuer_serial: tuple[Any, int] | None  # (asn1crypto Name, serial)
    key_identifier: bytes | None
    transport: KeyTransport | None  # None: an algorithm we do not decrypt with
    encrypted_key: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    content_type: str  # "enveloped_data" or "authenticated_enveloped_data"
    recipients: tuple[_Recipient, ...]
    cipher: ContentCipher
    parameter: bytes  # CBC IV or GCM nonce
    encrypted: bytes
    tag: bytes  # GCM only
    additional_data: bytes  # GCM: the DER of authAttrs as a SET OF, or empty


def read_envelope(der: bytes) -> Envelope:
    """Parse an EnvelopedData or AuthEnvelopedData ContentInfo; Rejection(malformed|weak-algorithm)."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        content_type = info["content_type"].native
        if content_type not in _ENCRYPTED_KINDS.values():
            raise Rejection(Reason.MALFORMED, f"CMS content {content_type} is not an envelope")
        return _envelope(content_type, info["content"])
    except (ValueError, TypeError, KeyError) as error:
        raise Rejection(Reason.MALFORMED, f"unreadable CMS envelope: {type(error).__name__}") from None


def _envelope(content_type: str, content: Any) -> Envelope:
    authenticated = content_type == "authenticated_enveloped_data"
    encrypted_info = content["auth_encrypted_content_info" if authenticated else "encrypted_content_info"]
    if encrypted_info["content_type"].native != "data":
        raise Rejection(Reason.MALFORMED, "the encrypted content is not a MIME entity (id-data)")
    algorithm = encrypted_info["content_encryption_algorithm"]
    cipher = _cipher(algorithm["algorithm"].native)
    if cipher.authenticated != authenticated:
        raise Rejection(Reason.MALFORMED, f"{cipher} does not belong in {content_type}")
    encrypted = encrypted_info["encrypted_content"]
    if not encrypted.native:
        raise Rejection(Reason.MALFORMED, "the envelope carries no encrypted content")
    parameter, tag, aad = _cbc_iv(algorithm), b"", b""
    if authenticated:
        parameter, icv_length = _gcm_parameters(algorithm)
        tag = content["mac"].native
        if len(tag) != icv_length:
            raise Rejection(Reason.MALFORMED, "the GCM tag length differs from its parameters")
        attrs = content["auth_attrs"]
        aad = attrs.untag().dump(force=True) if attrs.native is not None else b""
    infos = content["recipient_infos"]
    infos.native  # asn1crypto parses lazily: surface every structural fault here, as MALFORMED
    recipients = tuple(_recipient(ri) for ri in infos)
    return Envelope(content_type, recipients, cipher, parameter, bytes(encrypted.native), tag, aad)


def _cipher(name: str) -> ContentCipher:
    cipher = ContentCipher.from_oid_name(name)
    if cipher is None:
        reason = Reason.WEAK_ALGORITHM if name in _WEAK_CIPHERS else Reason.MALFORMED
        raise Rejection(reason, f"content encryption {name} is not supported")
    return cipher


def _cbc_iv(algorithm: algos.EncryptionAlgorithm) -> bytes:
    if algorithm["algorithm"].native.endswith("_gcm"):
        return b""
    iv = algorithm["parameters"].native
    if not isinstance(iv, bytes) or len(iv) != AES_BLOCK_BYTES:
        raise Rejection(Reason.MALFORMED, "AES-CBC without a 16-byte IV")
    return iv


def _gcm_parameters(algorithm: algos.EncryptionAlgorithm) -> tuple[bytes, int]:
    params = GcmParameters.load(algorithm["parameters"].dump(), strict=True)
    nonce, icv_length = params["aes_nonce"].native, params["aes_icvlen"].native
    # RFC 5084 §3.2: tags of 12 to 16 bytes; cryptography wants a nonce of at least 8.
    if not 12 <= icv_length <= 16 or not 8 <= len(nonce) <= 64:
        raise Rejection(Reason.MALFORMED, "GCM parameters out of range")
    return nonce, icv_length


def _recipient(info: cms.RecipientInfo) -> _Recipient:
    if info.name != "ktri":
        return _Recipient(None, None, None, b"")  # key agreement, KEK or password: not ours to open
    ktri = info.chosen
    rid = ktri["rid"]
    issuer_serial = key_id = None
    if rid.name == "issuer_and_serial_number":
        issuer_serial = (rid.chosen["issuer"], rid.chosen["serial_number"].native)
    else:
        key_id = rid.chosen.native
    return _Recipient(issuer_serial, key_id, _transport(ktri["key_encryption_algorithm"]), ktri["encrypted_key"].native)


def _transport(algorithm: cms.KeyEncryptionAlgorithm) -> KeyTransport | None:
    name = algorithm["algorithm"].native
    if name == "rsaes_pkcs1v15":
        return PKCS1V15
    if name != "rsaes_oaep":
        return None
    params = algorithm["parameters"]
    if params.native is None:
        params = algos.RSAESOAEPParams({})  # all defaults: SHA-1, MGF1-SHA-1
    oaep_hash = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    mgf_hash = mgf["parameters"]["algorithm"].native
    label = params["p_source_algorithm"]["parameters"].native
    if mgf["algorithm"].native != "mgf1" or label or oaep_hash not in OAEP_HASHES or mgf_hash not in OAEP_HASHES:
        return None
    return KeyTransport(TransportScheme.RSA_OAEP, oaep_hash, mgf_hash)


def open_envelope(
    envelope: Envelope, keys: Sequence[DecryptionKey], random_bytes: RandomBytes = os.urandom
) -> tuple[bytes, DecryptionKey, KeyTransport]:
    """(content, the key used, its transport); Rejection(decryption-failed) when it does not open."""
    key, recipient = _addressed_to_us(envelope, keys)
    assert recipient.transport is not None  # _addressed_to_us only matches usable recipients
    content_key, unwrapped = _unwrap(key, recipient, envelope.cipher.key_bytes, random_bytes)
    content = _decrypt_content(envelope, content_key)
    if content is None or not unwrapped:
        raise Rejection(Reason.DECRYPTION_FAILED, _FAILED)
    return content, key, recipient.transport


def _addressed_to_us(envelope: Envelope, keys: Sequence[DecryptionKey]) -> tuple[DecryptionKey, _Recipient]:
    addressed = False
    for key in keys:
        ours = _Identity.of(key.certificate)
        for recipient in envelope.recipients:
            if ours.matches(recipient):
                addressed = True
                if recipient.transport is not None:
                    return key, recipient
    if addressed:
        raise Rejection(Reason.DECRYPTION_FAILED, "the key transport for our certificate is not supported")
    raise Rejection(Reason.MALFORMED, "the envelope is addressed to none of our certificates")


@dataclass(frozen=True, slots=True)
class _Identity:
    issuer: Any
    serial: int
    key_identifier: bytes

    @classmethod
    @functools.lru_cache(maxsize=64)  # our few certificates, otherwise re-read for every message
    def of(cls, certificate: x509.Certificate) -> _Identity:
        cert = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
        return cls(cert.issuer, cert.serial_number, ski)

    def matches(self, recipient: _Recipient) -> bool:
        if recipient.issuer_serial is not None:
            issuer, serial = recipient.issuer_serial
            return serial == self.serial and issuer == self.issuer
        return recipient.key_identifier == self.key_identifier


def _unwrap(key: DecryptionKey, recipient: _Recipient, length: int, random_bytes: RandomBytes) -> tuple[bytes, bool]:
    """(content key, whether it really came out of the recipient info)."""
    assert recipient.transport is not None
    fallback = random_bytes(length)  # drawn every time, so both paths cost the same
    try:
        content_key = key.decrypt(recipient.encrypted_key, recipient.transport)
    except ValueError:
        return fallback, False
    if len(content_key) != length:
        return fallback, False
    return content_key, True


def _decrypt_content(envelope: Envelope, key: bytes) -> bytes | None:
    try:
        if envelope.cipher.authenticated:
            return _gcm(envelope, key)
        return _cbc(envelope, key)
    except (ValueError, InvalidTag):
        return None


def _gcm(envelope: Envelope, key: bytes) -> bytes:
    mode = modes.GCM(envelope.parameter, envelope.tag, min_tag_length=len(envelope.tag))
    decryptor = Cipher(algorithms.AES(key), mode).decryptor()
    if envelope.additional_data:
        decryptor.authenticate_additional_data(envelope.additional_data)
    return decryptor.update(envelope.encrypted) + decryptor.finalize()


def _cbc(envelope: Envelope, key: bytes) -> bytes:
    if len(envelope.encrypted) % AES_BLOCK_BYTES:
        raise ValueError("not whole blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(envelope.parameter)).decryptor()
    padded = decryptor.update(envelope.encrypted) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(AES_BLOCK_BYTES * 8).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


# --- MIME -------------------------------------------------------------------


def _rebuild(outer_head: bytes, entity: bytes, limits: MessageLimits) -> bytes:
    """The outer RFC 5322 fields, then the decrypted entity with its own fields.

    The outer fields are what the transport routed and what a signature's
    sender binding is checked against, so where both carry a field (a whole
    message encrypted, as `openssl cms -encrypt` does) the outer copy is kept
    and the inner one dropped: a message has one From, one Subject."""
    outer = [f for f in _fields(outer_head.rstrip(_CRLF), limits) if not _is_mime_field(f)]
    inner_head, body = _split_entity(_crlf(entity))
    seen = {field_name(f) for f in outer}
    inner = [f for f in _fields(inner_head, limits) if field_name(f) not in seen and field_name(f) != b"mime-version"]
    return _CRLF.join([*outer, b"MIME-Version: 1.0", *inner]) + _CRLF + _CRLF + body


def _is_mime_field(field: bytes) -> bool:
    return is_content_field(field) or field_name(field) == b"mime-version"


def _fields(head: bytes, limits: MessageLimits) -> list[bytes]:
    return header_fields(head, limits) if head else []


def _split_entity(entity: bytes) -> tuple[bytes, bytes]:
    if entity.startswith(_CRLF):
        return b"", entity[2:]  # no fields: text/plain by default
    head, sep, body = entity.partition(_CRLF + _CRLF)
    if not sep:
        raise Rejection(Reason.MALFORMED, "the decrypted content is not a MIME entity")
    return head, body


def _crlf(entity: bytes) -> bytes:
    # An LF-only entity (as some agents encrypt files from disk) becomes CRLF, like a received message.
    return entity.replace(b"\n", _CRLF) if b"\r" not in entity else entity
