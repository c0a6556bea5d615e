"""Digest and signature algorithms of CMS signatures: OIDs to primitives, and which are weak.

Two kinds of refusal come from here. An algorithm we do not implement but
that is sound in itself (SHA-3, GOST, DSA, Ed448...) is SIGNATURE_INVALID: the
structure is fine, we simply cannot show that the signature holds. An
identifier that contradicts itself or its SignerInfo (sha256WithRSAEncryption
beside a SHA-384 digestAlgorithm, RSASSA-PSS parameters naming another hash
than the digestAlgorithm, a trailer field other than 1, undecodable
parameters) is MALFORMED: no correct signer produces it.

Weakness is judged only once a signature has verified, so that a forged
signature is reported as such and not as merely weak.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from asn1crypto import algos, cms
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .errors import Rejection
from .reasons import Reason

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

MIN_RSA_BITS = 2048
STRONG_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


@dataclass(frozen=True, slots=True)
class Digest:
    name: str  # hashlib / report name, e.g. "sha256"
    new: Callable[..., Any]  # the hashlib constructor
    primitive: hashes.HashAlgorithm  # the same hash for cryptography's Prehashed
    weak: bool

    def of(self, data: bytes) -> bytes:
        return self.new(data).digest()


_DIGESTS: dict[str, Digest] = {
    "1.2.840.113549.2.5": Digest("md5", hashlib.md5, hashes.MD5(), weak=True),
    "1.3.14.3.2.26": Digest("sha1", hashlib.sha1, hashes.SHA1(), weak=True),
    "2.16.840.1.101.3.4.2.4": Digest("sha224", hashlib.sha224, hashes.SHA224(), weak=False),
    "2.16.840.1.101.3.4.2.1": Digest("sha256", hashlib.sha256, hashes.SHA256(), weak=False),
    "2.16.840.1.101.3.4.2.2": Digest("sha384", hashlib.sha384, hashes.SHA384(), weak=False),
    "2.16.840.1.101.3.4.2.3": Digest("sha512", hashlib.sha512, hashes.SHA512(), weak=False),
}

# The same weak hashes, as they sign certificates and CRLs.
WEAK_HASHES: tuple[type[hashes.HashAlgorithm], ...] = tuple(type(d.primitive) for d in _DIGESTS.values() if d.weak)

_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_RSASSA_PSS = "1.2.840.113549.1.1.10"
_MGF1 = "1.2.840.113549.1.1.8"
_EC_PUBLIC_KEY = "1.2.840.10045.2.1"  # some engines put the key OID where the signature OID belongs
_ED25519 = "1.3.101.112"

# Signature OIDs that fix the hash: (scheme, digest OID).
_HASHED_SIGNATURES: dict[str, tuple[str, str]] = {
    "1.2.840.113549.1.1.4": ("rsassa_pkcs1v15", "1.2.840.113549.2.5"),
    "1.2.840.113549.1.1.5": ("rsassa_pkcs1v15", "1.3.14.3.2.26"),
    "1.2.840.113549.1.1.14": ("rsassa_pkcs1v15", "2.16.840.1.101.3.4.2.4"),
    "1.2.840.113549.1.1.11": ("rsassa_pkcs1v15", "2.16.840.1.101.3.4.2.1"),
    "1.2.840.113549.1.1.12": ("rsassa_pkcs1v15", "2.16.840.1.101.3.4.2.2"),
    "1.2.840.113549.1.1.13": ("rsassa_pkcs1v15", "2.16.840.1.101.3.4.2.3"),
    "1.2.840.10045.4.1": ("ecdsa", "1.3.14.3.2.26"),
    "1.2.840.10045.4.3.1": ("ecdsa", "2.16.840.1.101.3.4.2.4"),
    "1.2.840.10045.4.3.2": ("ecdsa", "2.16.840.1.101.3.4.2.1"),
    "1.2.840.10045.4.3.3": ("ecdsa", "2.16.840.1.101.3.4.2.2"),
    "1.2.840.10045.4.3.4": ("ecdsa", "2.16.840.1.101.3.4.2.3"),
}
# Signature OIDs that leave the hash to the SignerInfo's digestAlgorithm.
_UNHASHED_SIGNATURES: dict[str, str] = {
    _RSA_ENCRYPTION: "rsassa_pkcs1v15",
    _EC_PUBLIC_KEY: "ecdsa",
    _ED25519: "ed25519",
}


@dataclass(frozen=True, slots=True)
class Pss:
    mgf_digest: Digest
    salt_length: int


@dataclass(frozen=True, slots=True)
class Scheme:
    """A resolved signature algorithm: one hash for the content, the attributes and the signature."""

    name: str  # "rsassa_pkcs1v15", "rsassa_pss", "ecdsa", "ed25519"
    digest: Digest
    pss: Pss | None = None

    def weakness(self, key: PublicKey) -> str | None:
        """Why this scheme with this key is too weak to accept, or None."""
        if self.digest.weak:
            return f"{self.digest.name} digest"
        if self.pss is not None and self.pss.mgf_digest.weak:
            return f"MGF1 with {self.pss.mgf_digest.name}"
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            return f"RSA key of {key.key_size} bits (minimum {MIN_RSA_BITS})"
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in STRONG_CURVES:
            return f"elliptic curve {key.curve.name}"
        return None


def digest_for(oid: str) -> Digest:
    digest = _DIGESTS.get(oid)
    if digest is None:
        raise Rejection(Reason.SIGNATURE_INVALID, f"unsupported digest algorithm {oid}")
    return digest


@lru_cache(maxsize=256)
def scheme_of(digest_algorithm: bytes, signature_algorithm: bytes) -> Scheme:
    """resolve_scheme on a SignerInfo's two AlgorithmIdentifiers, given as DER.

    The same few identifiers recur in every message, and reading them is a
    good part of the cost of a small one; an identifier names an algorithm and
    nothing else, so its reading is shared. Refusals and decoding errors (from
    the digestAlgorithm first) are raised afresh each time, never kept.
    """
    digest_oid = cms.DigestAlgorithm.load(digest_algorithm)["algorithm"].dotted
    return resolve_scheme(digest_oid, cms.SignedDigestAlgorithm.load(signature_algorithm))


def resolve_scheme(digest_oid: str, signature_algorithm: algos.SignedDigestAlgorithm) -> Scheme:
    """The scheme a SignerInfo names; its hash must agree with the digestAlgorithm."""
    oid = signature_algorithm["algorithm"].dotted
    if oid == _RSASSA_PSS:
        return _resolve_pss(digest_oid, signature_algorithm["parameters"])
    if oid in _HASHED_SIGNATURES:
        name, bound_digest_oid = _HASHED_SIGNATURES[oid]
        if bound_digest_oid != digest_oid:
            raise Rejection(
                Reason.MALFORMED,
                f"signature algorithm {oid} disagrees with digest algorithm {digest_oid}",
            )
        return Scheme(name, digest_for(digest_oid))
    if oid in _UNHASHED_SIGNATURES:
        return Scheme(_UNHASHED_SIGNATURES[oid], digest_for(digest_oid))
    raise Rejection(Reason.SIGNATURE_INVALID, f"unsupported signature algorithm {oid}")


def _resolve_pss(digest_oid: str, params: Any) -> Scheme:
    # RFC 4056: parameters are mandatory in CMS; absent ones would mean SHA-1
    # everywhere, which can never agree with a modern digestAlgorithm anyway.
    if not isinstance(params, algos.RSASSAPSSParams):
        raise Rejection(Reason.MALFORMED, "RSASSA-PSS without parameters")
    hash_oid = params["hash_algorithm"]["algorithm"].dotted
    if hash_oid != digest_oid:
        raise Rejection(
            Reason.MALFORMED, f"RSASSA-PSS hash {hash_oid} disagrees with digest algorithm {digest_oid}"
        )
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].dotted != _MGF1:
        raise Rejection(Reason.SIGNATURE_INVALID, f"unsupported mask generation {mgf['algorithm'].dotted}")
    mgf_hash = mgf["parameters"]
    if not isinstance(mgf_hash, algos.DigestAlgorithm):
        raise Rejection(Reason.MALFORMED, "MGF1 without a hash algorithm")
    salt_length = params["salt_length"].native
    if params["trailer_field"].native not in (1, "trailer_field_bc") or salt_length < 0:
        raise Rejection(Reason.MALFORMED, "RSASSA-PSS parameters out of range")
    # A MGF1 hash other than the message hash is unusual but sound (RFC 8017
    # allows it), so it is verified as stated rather than refused.
    return Scheme("rsassa_pss", digest_for(digest_oid), Pss(digest_for(mgf_hash["algorithm"].dotted), salt_length))


def verify(key: Any, scheme: Scheme, signature: bytes, message: bytes, message_digest: bytes) -> None:
    """Raise SIGNATURE_INVALID unless signature is scheme's signature of message by key.

    message_digest is message hashed with scheme.digest, computed once by the
    caller so that a large detached content is read a single time.
    """
    try:
        _check(key, scheme, signature, message, message_digest)
    except InvalidSignature:
        raise Rejection(Reason.SIGNATURE_INVALID, f"{scheme.name} signature does not verify") from None
    except (ValueError, TypeError, OverflowError, UnsupportedAlgorithm) as exc:
        raise Rejection(Reason.SIGNATURE_INVALID, f"{scheme.name} signature cannot be checked: {exc}") from None


def _check(key: Any, scheme: Scheme, signature: bytes, message: bytes, message_digest: bytes) -> None:
    prehashed = Prehashed(scheme.digest.primitive)
    if scheme.name == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, message_digest, padding.PKCS1v15(), prehashed)
    elif scheme.name == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
        assert scheme.pss is not None
        pss = padding.PSS(padding.MGF1(scheme.pss.mgf_digest.primitive), scheme.pss.salt_length)
        key.verify(signature, message_digest, pss, prehashed)
    elif scheme.name == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, message_digest, ec.ECDSA(prehashed))
    elif scheme.name == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, message)  # pure EdDSA signs the message itself
    else:
        raise Rejection(
            Reason.SIGNATURE_INVALID,
            f"signature algorithm {scheme.name} does not fit the signer's {type(key).__name__}",
        )
