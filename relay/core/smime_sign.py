"""Outbound S/MIME signing: an unsigned RFC 5322 message in, RFC 8551 multipart/signed out.

Pure: the private-key operation is a callable handed in by the caller, so the
key can live in an HSM, a file or anywhere else; the signing time is given
too. The output is a deterministic function of the inputs whenever the
signature scheme is (RSA PKCS#1 v1.5 is; PSS and ECDSA are randomised).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import Rejection
from .limits import DEFAULT_LIMITS, MessageLimits
from .reasons import Reason
from .smime_entity import base64_lines, canonical, content_entity, split_message


class SignatureScheme(StrEnum):
    RSA_PKCS1V15 = "rsa-pkcs1v15"
    RSA_PSS = "rsa-pss"  # SHA-256, MGF1-SHA-256, 32-byte salt
    ECDSA = "ecdsa"  # SHA-256


# The signing callable receives the exact bytes to sign (the DER of the signed
# attributes) and returns the signature value as CMS carries it: the RSA
# signature block, or the DER Ecdsa-Sig-Value for ECDSA. It hashes with SHA-256.
SignFunction = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A signer as the builder needs it: certificate, chain to include, scheme, key operation."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # intermediates placed in the signature, leaf excluded
    scheme: SignatureScheme
    sign: SignFunction


PSS_SALT_LENGTH = 32
MICALG = "sha-256"
_CRLF = b"\r\n"
_PREAMBLE = b"This is an S/MIME signed message"


def sign_message(
    raw: bytes, key: SigningKey, signing_time: dt.datetime, limits: MessageLimits = DEFAULT_LIMITS
) -> bytes:
    """The signed message; raise Rejection(malformed) when the unsigned one cannot be read."""
    if len(raw) > limits.max_message_bytes:
        raise Rejection(Reason.MALFORMED, f"message exceeds {limits.max_message_bytes} bytes")
    outer, content_fields, body = split_message(canonical(raw), limits)
    part = content_entity(content_fields, body)
    signature = build_signed_data(part, key, signing_time)
    return _multipart_signed(outer, part, signature)


def build_signed_data(content: bytes, key: SigningKey, signing_time: dt.datetime) -> bytes:
    """DER of a detached CMS SignedData (RFC 5652) over content, one SignerInfo with signed attributes."""
    _check_scheme(key)
    cert = asn1_x509.Certificate.load(key.certificate.public_bytes(Encoding.DER))
    signed_attrs = _signed_attributes(content, signing_time)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm.load(_signature_algorithm(key.scheme)),
            # RFC 5652 §5.4: the signature covers the attributes DER-encoded as a SET OF.
            "signature": key.sign(signed_attrs.dump()),
        }
    )
    chain = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in key.chain]
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cert, *chain],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def _check_scheme(key: SigningKey) -> None:
    public = key.certificate.public_key()
    wants_rsa = key.scheme in (SignatureScheme.RSA_PKCS1V15, SignatureScheme.RSA_PSS)
    if wants_rsa and not isinstance(public, rsa.RSAPublicKey):
        raise ValueError(f"scheme {key.scheme} needs an RSA certificate")
    if key.scheme is SignatureScheme.ECDSA and not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError("scheme ecdsa needs an EC certificate")


def _signed_attributes(content: bytes, signing_time: dt.datetime) -> cms.CMSAttributes:
    return cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["data"]},
            {"type": "signing_time", "values": [_cms_time(signing_time)]},
            {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
            cms.CMSAttribute.load(_capabilities()),
        ]
    )


def _cms_time(when: dt.datetime) -> cms.Time:
    if when.tzinfo is None:
        raise ValueError("signing time must be timezone-aware")
    when = when.astimezone(dt.timezone.utc)
    # RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise.
    choice = "utc_time" if 1950 <= when.year < 2050 else "generalized_time"
    return cms.Time({choice: when})


# The constant parts are encoded once: building asn1crypto values from dicts is
# the slowest step of signing a message, and these never change.
@functools.cache
def _capabilities() -> bytes:
    # RFC 8551 §2.5.2: what we can decrypt, strongest first.
    capabilities = cms.SMIMECapabilites(
        [{"capability_id": name} for name in ("aes256_gcm", "aes128_gcm", "aes256_cbc", "aes128_cbc")]
    )
    return cms.CMSAttribute({"type": "smime_capabilities", "values": [capabilities]}).dump()


@functools.cache
def _signature_algorithm(scheme: SignatureScheme) -> bytes:
    if scheme is SignatureScheme.RSA_PSS:
        params = algos.RSASSAPSSParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
                "salt_length": PSS_SALT_LENGTH,
            }
        )
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params}).dump()
    if scheme is SignatureScheme.ECDSA:
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}).dump()
    return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()}).dump()


# --- MIME -----------------------------------------------------------------


def _multipart_signed(outer: list[bytes], part: bytes, signature: bytes) -> bytes:
    boundary = _boundary(part, signature)
    b = boundary.encode("ascii")
    header = [
        *outer,
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";',
        b' micalg="' + MICALG.encode() + b'"; boundary="' + b + b'"',
    ]
    sig_part = [
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"',
        b"Content-Transfer-Encoding: base64",
        b'Content-Disposition: attachment; filename="smime.p7s"',
        b"Content-Description: S/MIME Cryptographic Signature",
        b"",
        *base64_lines(signature),
    ]
    return (
        _CRLF.join(header)
        + _CRLF + _CRLF + _PREAMBLE + _CRLF
        + b"--" + b + _CRLF + part + _CRLF
        + b"--" + b + _CRLF + _CRLF.join(sig_part) + _CRLF
        + b"--" + b + b"--" + _CRLF
    )


def _boundary(part: bytes, signature: bytes) -> str:
    """A boundary derived from the content, so the builder stays deterministic; it
    cannot collide with the signed part, whose lines never hold it (checked)."""
    seed = hashlib.sha256(part + signature).hexdigest()
    for n in range(len(seed) - 24):
        candidate = f"----=_relay_signed_{seed[n:n + 24]}"
        if candidate.encode("ascii") not in part:
            return candidate
    raise Rejection(Reason.MALFORMED, "no free multipart boundary")  # unreachable in practice
