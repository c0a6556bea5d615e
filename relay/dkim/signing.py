"""DKIM signing of outbound mail, one key per sending domain.

relaxed/relaxed canonicalisation (header folding and trailing white space
may change on the way without breaking the signature), no l= tag (the whole
body is signed), and a fixed header set: the fields a reader sees and the
MIME fields that say how to read the body. A listed field that is absent is
still named in h=, which stops anyone from adding it later (RFC 6376 §5.4).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..core.errors import Rejection
from ..core.mime import read_headers

SIGNED_HEADERS: tuple[str, ...] = (
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding", "Reply-To", "In-Reply-To", "References", "Disposition-Notification-To",
)

DkimPrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class DkimAlgorithm(StrEnum):
    RSA_SHA256 = "rsa-sha256"
    ED25519_SHA256 = "ed25519-sha256"  # RFC 8463


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str  # the d= tag: the signing domain
    selector: str  # the s= tag
    private_key: DkimPrivateKey

    @property
    def algorithm(self) -> DkimAlgorithm:
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return DkimAlgorithm.ED25519_SHA256
        return DkimAlgorithm.RSA_SHA256

    def dkimpy_key(self) -> bytes:
        """The key as dkimpy takes it: PEM for RSA, the base64 seed for ed25519."""
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            seed = self.private_key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            return base64.b64encode(seed)
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )


def load_key(domain: str, selector: str, path: Path) -> DkimKey:
    """A key from an unencrypted PEM file (RSA or Ed25519, as `openssl genpkey` writes them)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"DKIM key for {domain}: cannot read {path}: {error}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise ValueError(f"DKIM key for {domain}: only RSA and Ed25519 keys sign DKIM")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 1024:
        raise ValueError(f"DKIM key for {domain}: RSA keys of fewer than 1024 bits are refused by verifiers")
    return DkimKey(domain.lower(), selector, key)


@dataclass(frozen=True, slots=True)
class DkimKeyTable:
    """The signing key of each sending domain."""

    keys: Mapping[str, DkimKey]

    @classmethod
    def of(cls, *keys: DkimKey) -> DkimKeyTable:
        return cls({key.domain.lower(): key for key in keys})

    def key_for(self, domain: str) -> DkimKey | None:
        return self.keys.get(domain.lower().rstrip("."))


def load_key_table(table: Mapping[str, Any], base: Path) -> DkimKeyTable:
    """From a TOML table {domain = {selector = "...", key_file = "..."}}; relative paths from base.

    [dkim."hopital-test.mssante.fr"]
    selector = "rsa2026"
    key_file = "dkim/hopital-rsa.pem"
    """
    keys = []
    for domain, entry in table.items():
        if not isinstance(entry, Mapping) or set(entry) != {"selector", "key_file"}:
            raise ValueError(f"DKIM key for {domain}: give exactly selector and key_file")
        selector, key_file = entry["selector"], entry["key_file"]
        if not isinstance(selector, str) or not isinstance(key_file, str) or not selector:
            raise ValueError(f"DKIM key for {domain}: selector and key_file are strings")
        keys.append(load_key(domain, selector, base / key_file))
    return DkimKeyTable.of(*keys)


def sign_message(message: bytes, key: DkimKey) -> bytes:
    """The message with a DKIM-Signature field in front; ValueError when it cannot be signed."""
    _check_from(message)
    try:
        field = dkim.sign(
            message,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            key.dkimpy_key(),
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=key.algorithm.value.encode("ascii"),
            include_headers=[name.lower().encode("ascii") for name in SIGNED_HEADERS],
            linesep=b"\r\n",
        )
    except (dkim.DKIMException, UnicodeError) as error:
        raise ValueError(f"DKIM signing for {key.domain} failed: {type(error).__name__}") from None
    return field + message


def _check_from(message: bytes) -> None:
    # dkimpy would sign a message without From; the signature would then vouch for nobody.
    try:
        headers = read_headers(message)
    except Rejection as rejection:
        raise ValueError(f"DKIM signing refused: {rejection.detail}") from None
    if headers.count("From") != 1:
        raise ValueError("DKIM signing refused: the message needs exactly one From field")


def dns_record(key: DkimKey) -> str:
    """The TXT record to publish at `selector._domainkey.domain`."""
    public = key.private_key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
