"""Decryption keys: the key-transport step of S/MIME decryption, in a PKCS#11 token or in memory.

Each provider returns a `DecryptionKey` whose `decrypt(encrypted_key, transport)`
gives the content-encryption key, raises ValueError when the encrypted key
does not open (the core then carries on with a random key, so that failure
looks like any other), and raises KeyStoreError when the token cannot do the
operation at all (mechanism missing, token gone): that is an operational
fault, not a property of the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import MGF, Mechanism
from pkcs11 import exceptions as p11

from ..core.smime_decrypt import DecryptionKey, DecryptFunction
from ..core.smime_encrypt import KeyTransport, TransportScheme
from .errors import KeyErrorCode, KeyStoreError
from .pkcs11_token import Pkcs11Token, as_key_error, certificate_der

_HASH_MECHANISMS: dict[str, tuple[Mechanism, MGF]] = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1),
    "sha224": (Mechanism.SHA224, MGF.SHA224),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}

# What a token answers when the encrypted key itself is wrong. SoftHSM2 reports
# bad PKCS#1 v1.5 or OAEP padding as CKR_GENERAL_ERROR, which the token pool
# would otherwise take for a lost session and answer with a re-login: a slow
# path only bad ciphertexts take is exactly the oracle to avoid.
_REFUSALS = (
    p11.EncryptedDataInvalid,
    p11.EncryptedDataLenRange,
    p11.GeneralError,
    p11.DataInvalid,
    p11.DataLenRange,
)
# The token cannot do this transport at all (SoftHSM2 2.6 knows OAEP with SHA-1 only).
_UNSUPPORTED = (p11.ArgumentsBad, p11.MechanismInvalid, p11.MechanismParamInvalid)


def software_decryption_key(key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> DecryptionKey:
    if key.public_key() != certificate.public_key():
        raise KeyStoreError(KeyErrorCode.KEY_NOT_FOUND, "the private key is not the key of the certificate")
    return DecryptionKey(certificate, lambda encrypted, transport: key.decrypt(encrypted, transport.padding()))


def load_token_decryption_key(token: Pkcs11Token, label: str) -> DecryptionKey:
    """The RSA key and certificate under label in the token (as `relay keys import` stores them)."""
    der = token.run(lambda pooled: certificate_der(pooled.session, label))
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        raise KeyStoreError(KeyErrorCode.KEY_NOT_FOUND, f"certificate {label!r} in the token is unreadable") from None
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise KeyStoreError(KeyErrorCode.KEY_UNSUPPORTED, f"{label!r} is not an RSA key: no key transport with it")
    return DecryptionKey(certificate, token_decrypter(token, label))


@dataclass(frozen=True, slots=True)
class _Refused:
    error: p11.PKCS11Error


def token_decrypter(token: Pkcs11Token, label: str) -> DecryptFunction:
    def decrypt(encrypted: bytes, transport: KeyTransport) -> bytes:
        mechanism, param = _mechanism(transport)

        def operation(pooled: Any) -> bytes | _Refused:
            try:
                return bytes(pooled.private_key(label).decrypt(encrypted, mechanism=mechanism, mechanism_param=param))
            except _REFUSALS as error:
                return _Refused(error)  # returned, not raised: the pool must not recover from it

        try:
            result = token.run(operation)
        except _UNSUPPORTED:
            raise KeyStoreError(
                KeyErrorCode.KEY_UNSUPPORTED, f"token {token.label!r} cannot decrypt {_describe(transport)}"
            ) from None
        except p11.PKCS11Error as error:
            raise as_key_error(error, f"decrypting with {label!r} on token {token.label!r}") from None
        if isinstance(result, _Refused):
            raise ValueError("the token refused the encrypted key")
        return result

    return decrypt


def _mechanism(transport: KeyTransport) -> tuple[Mechanism, tuple[Any, ...] | None]:
    if transport.scheme is TransportScheme.RSA_PKCS1V15:
        return Mechanism.RSA_PKCS, None
    try:
        hash_mechanism, _ = _HASH_MECHANISMS[transport.oaep_hash]
        _, mgf = _HASH_MECHANISMS[transport.mgf_hash]
    except KeyError:
        raise KeyStoreError(KeyErrorCode.KEY_UNSUPPORTED, f"no PKCS#11 mechanism for {_describe(transport)}") from None
    return Mechanism.RSA_PKCS_OAEP, (hash_mechanism, mgf, None)


def _describe(transport: KeyTransport) -> str:
    if transport.scheme is TransportScheme.RSA_PKCS1V15:
        return "RSAES-PKCS1-v1_5"
    return f"RSA-OAEP with {transport.oaep_hash} and MGF1-{transport.mgf_hash}"
