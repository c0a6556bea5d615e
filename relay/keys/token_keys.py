"""Signing keys held in a PKCS#11 token, as `SigningKey`s for the S/MIME builder."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, core

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import MGF, Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_ecdsa_signature

from ..core.smime_sign import PSS_SALT_LENGTH, SignatureScheme, SignFunction, SigningKey
from .config import KeyConfig, chain_label
from .errors import KeyErrorCode, KeyStoreError
from .pkcs11_token import Pkcs11Token, PooledSession, as_key_error, certificate_der
from .software import default_scheme

_PROBE = b"relay: does this private key match its certificate?"


def load_token_key(token: Pkcs11Token, key: KeyConfig) -> SigningKey:
    """The key and certificate under key.label, with the CA certificates imported beside them.

    One probe signature checks that the private key is the certificate's, so
    a mislabelled object is found at start-up, not by the peers' verifiers."""
    certificate, chain = token.run(lambda pooled: _certificates(pooled, key.label))
    scheme = default_scheme(certificate.public_key(), key.rsa_pss)
    plan = mechanism_plan(scheme, token.mechanisms())
    signing_key = SigningKey(certificate, chain, scheme, token_signer(token, key.label, plan))
    _check_pair(signing_key, key.label)
    return signing_key


@dataclass(frozen=True, slots=True)
class MechanismPlan:
    """How one scheme maps onto what the token offers."""

    mechanism: Mechanism
    param: tuple[Any, ...] | None = None
    hash_outside: bool = False  # the token signs a SHA-256 digest computed here
    digest_info: bool = False  # CKM_RSA_PKCS: the digest wrapped in a DER DigestInfo first
    raw_ecdsa: bool = False  # the token returns r||s, CMS wants the DER Ecdsa-Sig-Value


_PSS_PARAM = (Mechanism.SHA256, MGF.SHA256, PSS_SALT_LENGTH)


def mechanism_plan(scheme: SignatureScheme, available: frozenset[Mechanism]) -> MechanismPlan:
    """The combined hash-and-sign mechanism when the token has it, else the raw one over our digest
    (some vendor modules only offer CKM_RSA_PKCS / CKM_RSA_PKCS_PSS)."""
    if scheme is SignatureScheme.ECDSA:
        return MechanismPlan(Mechanism.ECDSA, hash_outside=True, raw_ecdsa=True)
    if scheme is SignatureScheme.RSA_PSS:
        if Mechanism.SHA256_RSA_PKCS_PSS in available or Mechanism.RSA_PKCS_PSS not in available:
            return MechanismPlan(Mechanism.SHA256_RSA_PKCS_PSS, _PSS_PARAM)
        return MechanismPlan(Mechanism.RSA_PKCS_PSS, _PSS_PARAM, hash_outside=True)
    if Mechanism.SHA256_RSA_PKCS in available or Mechanism.RSA_PKCS not in available:
        return MechanismPlan(Mechanism.SHA256_RSA_PKCS)
    return MechanismPlan(Mechanism.RSA_PKCS, hash_outside=True, digest_info=True)


def token_signer(token: Pkcs11Token, label: str, plan: MechanismPlan) -> SignFunction:
    """sign(data) through the token, following the plan."""

    def sign(data: bytes) -> bytes:
        payload = _payload(plan, data)
        try:
            raw = token.run(lambda pooled: pooled.private_key(label).sign(
                payload, mechanism=plan.mechanism, mechanism_param=plan.param
            ))
        except p11.PKCS11Error as error:
            raise as_key_error(error, f"signing with {label!r} on token {token.label!r}") from None
        return encode_ecdsa_signature(raw) if plan.raw_ecdsa else raw

    return sign


def _payload(plan: MechanismPlan, data: bytes) -> bytes:
    if not plan.hash_outside:
        return data
    digest = hashlib.sha256(data).digest()
    if plan.digest_info:
        return algos.DigestInfo({"digest_algorithm": {"algorithm": "sha256", "parameters": core.Null()}, "digest": digest}).dump()
    return digest


def _certificates(pooled: PooledSession, label: str) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    leaf = _load(certificate_der(pooled.session, label), label)
    chain = []
    for index in range(1, 10):
        found = list(
            pooled.session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: chain_label(label, index)})
        )
        if not found:
            break
        chain.append(_load(bytes(found[0][Attribute.VALUE]), chain_label(label, index)))
    return leaf, tuple(chain)


def _load(der: bytes, label: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as error:
        raise KeyStoreError(KeyErrorCode.KEY_NOT_FOUND, f"certificate {label!r} in the token is unreadable: {error}") from None


def _check_pair(key: SigningKey, label: str) -> None:
    signature = key.sign(_PROBE)
    public = key.certificate.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, _PROBE, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            pad = (
                padding.PSS(padding.MGF1(hashes.SHA256()), PSS_SALT_LENGTH)
                if key.scheme is SignatureScheme.RSA_PSS
                else padding.PKCS1v15()
            )
            public.verify(signature, _PROBE, pad, hashes.SHA256())
    except InvalidSignature:
        raise KeyStoreError(
            KeyErrorCode.KEY_NOT_FOUND, f"the private key labelled {label!r} is not the key of its certificate"
        ) from None
