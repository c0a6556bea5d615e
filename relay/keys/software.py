"""Signing with a private key held in memory (files, tests): the reference the token must match."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..core.smime_sign import PSS_SALT_LENGTH, SignatureScheme, SignFunction, SigningKey
from ..trust.material import MaterialError, read_certificates
from .errors import KeyErrorCode, KeyStoreError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def default_scheme(public_key: object, rsa_pss: bool = False) -> SignatureScheme:
    """PKCS#1 v1.5 for RSA unless PSS is asked for; ECDSA for EC keys."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return SignatureScheme.RSA_PSS if rsa_pss else SignatureScheme.RSA_PKCS1V15
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return SignatureScheme.ECDSA
    raise KeyStoreError(KeyErrorCode.KEY_UNSUPPORTED, f"no S/MIME signing scheme for {type(public_key).__name__}")


def software_signer(key: PrivateKey, scheme: SignatureScheme) -> SignFunction:
    if scheme is SignatureScheme.ECDSA and isinstance(key, ec.EllipticCurvePrivateKey):
        return lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey) and scheme is not SignatureScheme.ECDSA:
        pad: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(hashes.SHA256()), PSS_SALT_LENGTH)
            if scheme is SignatureScheme.RSA_PSS
            else padding.PKCS1v15()
        )
        return lambda data: key.sign(data, pad, hashes.SHA256())
    raise KeyStoreError(KeyErrorCode.KEY_UNSUPPORTED, f"scheme {scheme} does not fit a {type(key).__name__}")


def software_key(
    key: PrivateKey, certificate: x509.Certificate, chain: tuple[x509.Certificate, ...] = (), rsa_pss: bool = False
) -> SigningKey:
    scheme = default_scheme(certificate.public_key(), rsa_pss)
    return SigningKey(certificate, chain, scheme, software_signer(key, scheme))


def load_file_key(key_file: Path, cert_file: Path, chain_file: Path | None = None, rsa_pss: bool = False) -> SigningKey:
    """A signing key from an unencrypted PEM private key and PEM certificate files."""
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        certs = read_certificates(cert_file)
        chain = read_certificates(chain_file) if chain_file else certs[1:]
    except (OSError, ValueError, TypeError, MaterialError) as error:
        raise KeyStoreError(KeyErrorCode.KEY_NOT_FOUND, f"cannot load key material: {error}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise KeyStoreError(KeyErrorCode.KEY_UNSUPPORTED, f"{key_file}: only RSA and EC keys sign S/MIME here")
    if key.public_key() != certs[0].public_key():
        raise KeyStoreError(KeyErrorCode.KEY_NOT_FOUND, f"{key_file} is not the key of {cert_file}")
    return software_key(key, certs[0], tuple(chain), rsa_pss)
