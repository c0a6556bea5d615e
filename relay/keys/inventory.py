"""What a PKCS#11 module offers: its tokens, and the keys and certificates of one token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11

from .module import load_module
from .pkcs11_token import Pkcs11Token, PooledSession, as_key_error


@dataclass(frozen=True, slots=True)
class TokenInfo:
    slot: int
    label: str
    manufacturer: str
    model: str
    serial: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    kind: str  # "private-key", "public-key" or "certificate"
    label: str
    key_id: str  # CKA_ID in hex: pairs a key with its certificate
    detail: str  # key type, or subject and expiry of a certificate


def list_tokens(module: str) -> tuple[TokenInfo, ...]:
    lib = load_module(module).lib
    try:
        return tuple(_token_info(slot) for slot in lib.get_slots(token_present=True))
    except p11.PKCS11Error as error:
        raise as_key_error(error, f"module {module}") from None


def _token_info(slot: Any) -> TokenInfo:
    token = slot.get_token()
    serial = token.serial.decode("ascii", "replace").strip() if isinstance(token.serial, bytes) else str(token.serial)
    return TokenInfo(slot.slot_id, token.label, token.manufacturer_id, token.model, serial)


def list_objects(token: Pkcs11Token) -> tuple[ObjectInfo, ...]:
    """Keys and certificates visible to the session: private keys only once logged in."""
    return token.run(_objects)


def _objects(pooled: PooledSession) -> tuple[ObjectInfo, ...]:
    found = []
    for kind, object_class in (
        ("private-key", ObjectClass.PRIVATE_KEY),
        ("public-key", ObjectClass.PUBLIC_KEY),
        ("certificate", ObjectClass.CERTIFICATE),
    ):
        for obj in pooled.session.get_objects({Attribute.CLASS: object_class}):
            found.append(ObjectInfo(kind, _text(obj, Attribute.LABEL), _hex_id(obj), _detail(obj, object_class)))
    return tuple(sorted(found, key=lambda o: (o.label, o.kind)))


def _hex_id(obj: Any) -> str:
    try:
        return bytes(obj[Attribute.ID] or b"").hex()
    except p11.PKCS11Error:
        return ""


def _text(obj: Any, attribute: Attribute) -> str:
    try:
        return str(obj[attribute] or "")
    except p11.PKCS11Error:
        return ""


def _detail(obj: Any, object_class: ObjectClass) -> str:
    if object_class is not ObjectClass.CERTIFICATE:
        key_type = obj.key_type
        if key_type is KeyType.RSA and obj.key_length:
            return f"RSA-{obj.key_length}"
        return getattr(key_type, "name", str(key_type))
    try:
        cert = x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE]))
    except ValueError:
        return "unreadable certificate"
    return f"{cert.subject.rfc4514_string()} (until {cert.not_valid_after_utc:%Y-%m-%d})"
