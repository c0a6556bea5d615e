"""Loading a PKCS#12 (key, certificate, chain) into a token, for demos and key ceremonies.

The private key is created non-extractable and sensitive: once in the token
it signs there and never leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pkcs11 import Attribute
from pkcs11 import exceptions as p11
from pkcs11.util.ec import decode_ec_private_key
from pkcs11.util.rsa import decode_rsa_private_key
from pkcs11.util.x509 import decode_x509_certificate

from .config import chain_label
from .errors import KeyErrorCode, KeyStoreError
from .pkcs11_token import Pkcs11Token, as_key_error


@dataclass(frozen=True, slots=True)
class Imported:
    label: str
    key_id: bytes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def read_pkcs12(data: bytes, password: bytes | None) -> tuple[Any, x509.Certificate, tuple[x509.Certificate, ...]]:
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise KeyStoreError(KeyErrorCode.IMPORT_FAILED, "not a PKCS#12 file, or a wrong password") from None
    if key is None or cert is None:
        raise KeyStoreError(KeyErrorCode.IMPORT_FAILED, "the PKCS#12 holds no private key with its certificate")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise KeyStoreError(KeyErrorCode.KEY_UNSUPPORTED, "only RSA and EC keys sign S/MIME here")
    return key, cert, tuple(chain)


def import_pkcs12(token: Pkcs11Token, data: bytes, password: bytes | None, label: str) -> Imported:
    """Create the key, its certificate and the CA certificates (labels `<label>.caN`)."""
    key, cert, chain = read_pkcs12(data, password)
    # Keep CAs, not the roots: verifiers hold those as anchors.
    chain = tuple(c for c in chain if c.issuer != c.subject)
    key_id = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    with token.write_session() as session:
        _refuse_existing(session, label)
        try:
            session.create_object(_key_template(key, label, key_id))
            session.create_object(_cert_template(cert, label, key_id))
            for index, ca in enumerate(chain, start=1):
                session.create_object(_cert_template(ca, chain_label(label, index), b""))
        except p11.PKCS11Error as error:
            raise as_key_error(error, f"importing {label!r} into token {token.label!r}") from None
    return Imported(label, key_id, cert, chain)


def _refuse_existing(session: Any, label: str) -> None:
    if list(session.get_objects({Attribute.LABEL: label})):
        raise KeyStoreError(KeyErrorCode.IMPORT_FAILED, f"objects labelled {label!r} already exist in the token")


def _key_template(key: Any, label: str, key_id: bytes) -> dict[Attribute, Any]:
    traditional = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    attrs = decode_rsa_private_key(traditional) if isinstance(key, rsa.RSAPrivateKey) else decode_ec_private_key(traditional)
    attrs.update(
        {
            Attribute.LABEL: label,
            Attribute.ID: key_id,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: isinstance(key, rsa.RSAPrivateKey),
            Attribute.UNWRAP: False,
        }
    )
    attrs.pop(Attribute.DERIVE, None)
    return attrs


def _cert_template(cert: x509.Certificate, label: str, key_id: bytes) -> dict[Attribute, Any]:
    attrs = decode_x509_certificate(cert.public_bytes(serialization.Encoding.DER))
    attrs.update({Attribute.LABEL: label, Attribute.TOKEN: True, Attribute.PRIVATE: False})
    if key_id:
        attrs[Attribute.ID] = key_id
    return attrs


