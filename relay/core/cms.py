"""CMS SignedData (RFC 5652) parsing and signature verification.

Verification runs in three passes, in the precedence order of the reason
vocabulary: the whole structure is read first (MALFORMED), then every
SignerInfo is matched to its certificate and verified (SIGNER_UNKNOWN,
SIGNATURE_INVALID), and only then are algorithms and keys judged
(WEAK_ALGORITHM). So a message with one weak-but-valid signer and one forged
signer is reported as forged, whatever their order.

An algorithm we do not implement is SIGNATURE_INVALID, not MALFORMED (see
relay.core.algorithms); it is deferred to the second pass so that a
structural fault elsewhere still wins.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any, Iterable

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from . import algorithms
from . import cms_asn1 as asn1
from .algorithms import Digest, Scheme
from .cms_asn1 import ID_DATA
from .errors import Rejection
from .reasons import Reason

_ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_ATTR_SIGNING_TIME = "1.2.840.113549.1.9.5"

# asn1crypto parses lazily and reports any encoding fault with one of these.
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


@dataclass(frozen=True, slots=True)
class Signer:
    certificate: x509.Certificate
    digest_algorithm: str  # e.g. "sha256"
    signature_algorithm: str  # e.g. "rsassa_pkcs1v15", "rsassa_pss", "ecdsa"
    signing_time: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class SignedData:
    content: bytes  # the signed content (detached bytes or eContent)
    signers: tuple[Signer, ...]  # never empty
    certificates: tuple[x509.Certificate, ...]  # the certificate set, as presented


def verify_signed_data(der: bytes, detached_content: bytes | None) -> SignedData:
    """Verify every SignerInfo; raise Rejection(malformed|signature-invalid|signer-unknown|weak-algorithm)."""
    structure = _read(der, detached_content)
    digests = _ContentDigests(structure.content)
    verified = [(info, _verify_signer(info, structure.certificates, digests)) for info in structure.signer_infos]
    for info, entry in verified:
        weakness = info.scheme.weakness(entry.public_key) if info.scheme else None
        if weakness:
            raise Rejection(Reason.WEAK_ALGORITHM, f"signer serial {entry.serial:x}: {weakness}")
    return SignedData(
        content=structure.content,
        signers=tuple(_signer(info, entry) for info, entry in verified),
        certificates=tuple(entry.certificate for entry in structure.certificates),
    )


# ---- pass 1: structure ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _IssuerSerial:
    issuer: asn1_x509.Name
    issuer_der: bytes
    serial: int


@dataclass(frozen=True, slots=True)
class _SignedAttributes:
    der: bytes  # what the signature covers: EXPLICIT SET tag, contents exactly as received
    message_digest: bytes
    signing_time: dt.datetime | None


@dataclass(frozen=True, slots=True)
class _SignerInfo:
    sid: _IssuerSerial | bytes  # bytes: a subjectKeyIdentifier
    scheme: Scheme | None  # None when unsupported is set
    unsupported: Rejection | None  # a sound algorithm we cannot check; raised in pass 2
    attributes: _SignedAttributes | None
    signature: bytes


@dataclass(frozen=True, slots=True)
class _CertEntry:
    """One certificate of the set, with what SignerIdentifiers are matched against."""

    certificate: x509.Certificate
    issuer: asn1_x509.Name
    issuer_der: bytes
    serial: int
    key_id: bytes  # the SubjectKeyIdentifier, or the RFC 5280 §4.2.1.2 (1) hash when absent

    @property
    def public_key(self) -> Any:
        try:
            return self.certificate.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise Rejection(Reason.SIGNATURE_INVALID, f"signer public key unusable: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Structure:
    content: bytes
    certificates: tuple[_CertEntry, ...]
    signer_infos: tuple[_SignerInfo, ...]


def _read(der: bytes, detached_content: bytes | None) -> _Structure:
    try:
        return _read_structure(der, detached_content)
    except _DECODE_ERRORS as exc:
        raise Rejection(Reason.MALFORMED, f"undecodable CMS structure: {exc}") from None


def _read_structure(der: bytes, detached_content: bytes | None) -> _Structure:
    signed = asn1.read_signed_data(der)
    content = _content(signed.econtent, detached_content)
    infos = tuple(_read_signer_info(si, signed.content_type) for si in signed.signer_infos)
    if not infos:
        raise Rejection(Reason.MALFORMED, "no SignerInfo")
    return _Structure(content, tuple(_load_certificate(der) for der in signed.certificates), infos)


def _content(econtent: bytes | None, detached_content: bytes | None) -> bytes:
    if econtent is None:
        if detached_content is None:
            raise Rejection(Reason.MALFORMED, "no eContent and no detached content")
        return detached_content
    if detached_content is not None:
        raise Rejection(Reason.MALFORMED, "eContent present beside a detached content")
    return econtent


def _read_signer_info(si: asn1.RawSignerInfo, content_type: str) -> _SignerInfo:
    scheme: Scheme | None = None
    unsupported: Rejection | None = None
    try:
        scheme = algorithms.scheme_of(si.digest_algorithm, si.signature_algorithm)
    except Rejection as refusal:
        if refusal.reason is not Reason.SIGNATURE_INVALID:
            raise
        unsupported = refusal
    return _SignerInfo(
        sid=_sid(si.sid),
        scheme=scheme,
        unsupported=unsupported,
        attributes=_signed_attributes(si.signed_attrs, content_type),
        signature=si.signature,
    )


@lru_cache(maxsize=512)
def _sid(der: bytes) -> _IssuerSerial | bytes:
    """The SignerIdentifier read from its DER: it names a certificate, and recurs
    in every message of that signer, so its reading is shared like the
    certificate's (the issuer Name is only ever compared and rendered)."""
    sid = asn1_cms.SignerIdentifier.load(der)
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"]
        return _IssuerSerial(issuer, issuer.dump(), sid.chosen["serial_number"].native)
    return sid.chosen.native


# What each single-valued attribute (RFC 5652 §11) holds.
_ATTRIBUTE_SPECS = {
    _ATTR_CONTENT_TYPE: core.ObjectIdentifier,
    _ATTR_MESSAGE_DIGEST: core.OctetString,
    _ATTR_SIGNING_TIME: asn1_cms.Time,
}


def _signed_attributes(attrs: bytes | None, content_type: str) -> _SignedAttributes | None:
    """attrs: the contents of the [0] IMPLICIT SET OF Attribute, None when absent."""
    if attrs is None:
        # RFC 5652 §5.3: without attributes the signature covers the content
        # itself, which only makes sense for plain id-data.
        if content_type != ID_DATA:
            raise Rejection(Reason.MALFORMED, f"no signed attributes with eContentType {content_type}")
        return None
    found: dict[str, Any] = {}
    for kind, values in asn1.attributes_in(attrs):
        spec = _ATTRIBUTE_SPECS.get(kind)
        if spec is None:
            continue
        encoded = [value.encoded for value in islice(asn1.values_in(values), 2)]  # one is allowed
        if kind in found or len(encoded) != 1:
            raise Rejection(Reason.MALFORMED, f"signed attribute {kind} must occur once with one value")
        found[kind] = _load_value(spec, encoded[0])
    if _ATTR_CONTENT_TYPE not in found or _ATTR_MESSAGE_DIGEST not in found:
        raise Rejection(Reason.MALFORMED, "signed attributes lack contentType or messageDigest")
    if asn1.dotted(found[_ATTR_CONTENT_TYPE]) != content_type:
        raise Rejection(Reason.MALFORMED, "contentType attribute differs from eContentType")
    return _SignedAttributes(
        # RFC 5652 §5.4: the signature covers the SET OF with its universal
        # tag, not the [0] IMPLICIT as sent; the contents stay byte for byte.
        der=asn1.with_header(0x31, attrs),
        message_digest=found[_ATTR_MESSAGE_DIGEST].native,
        signing_time=_signing_time(found.get(_ATTR_SIGNING_TIME)),
    )


# Time's alternatives by their tag: the CHOICE class costs more than the reading itself.
_TIME_ALTERNATIVES = {b"\x17": core.UTCTime, b"\x18": core.GeneralizedTime}


def _load_value(spec: Any, encoded: bytes) -> Any:
    if spec is asn1_cms.Time:  # any other tag is left to the CHOICE, which refuses it
        spec = _TIME_ALTERNATIVES.get(encoded[:1], spec)
    return spec.load(encoded, strict=True)


def _signing_time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    when = value.native
    if not isinstance(when, dt.datetime) or when.tzinfo is None:
        raise Rejection(Reason.MALFORMED, "signing-time is not a date")
    return when


# cryptography parses names and extensions on first use; these are its refusals.
_CERTIFICATE_ERRORS = (x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


@lru_cache(maxsize=512)
def _load_certificate(der: bytes) -> _CertEntry:
    """Parse once per distinct certificate; a pure function of its bytes, so safe to share."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        # Read now what later steps read, so that a certificate that cannot
        # be understood is refused here, once, as malformed.
        certificate.subject.rfc4514_string(), certificate.issuer.rfc4514_string(), certificate.extensions
        parsed = asn1_x509.Certificate.load(der, strict=True)
        tbs = parsed["tbs_certificate"]
        key_id = parsed.key_identifier or parsed.public_key.sha1
        return _CertEntry(certificate, tbs["issuer"], tbs["issuer"].dump(), tbs["serial_number"].native, key_id)
    except (*_DECODE_ERRORS, *_CERTIFICATE_ERRORS) as exc:
        raise Rejection(Reason.MALFORMED, f"undecodable certificate in the signature: {exc}") from None


# ---- pass 2: signer and signature ------------------------------------------


class _ContentDigests:
    """The content hashed once per digest algorithm, however many signers use it."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self._done: dict[str, bytes] = {}

    def of(self, digest: Digest) -> bytes:
        if digest.name not in self._done:
            self._done[digest.name] = digest.of(self.content)
        return self._done[digest.name]


def _verify_signer(info: _SignerInfo, certificates: Iterable[_CertEntry], digests: _ContentDigests) -> _CertEntry:
    entry = _find_signer(info.sid, certificates)
    if info.unsupported is not None:
        raise info.unsupported
    assert info.scheme is not None
    content_digest = digests.of(info.scheme.digest)
    if info.attributes is None:
        message, message_digest = digests.content, content_digest
    else:
        if info.attributes.message_digest != content_digest:
            raise Rejection(Reason.SIGNATURE_INVALID, "messageDigest attribute does not match the content")
        message = info.attributes.der
        message_digest = info.scheme.digest.of(message)
    algorithms.verify(entry.public_key, info.scheme, info.signature, message, message_digest)
    return entry


def _find_signer(sid: _IssuerSerial | bytes, certificates: Iterable[_CertEntry]) -> _CertEntry:
    for entry in certificates:
        if _matches(sid, entry):
            return entry
    raise Rejection(Reason.SIGNER_UNKNOWN, f"no certificate in the signature matches {_describe(sid)}")


def _matches(sid: _IssuerSerial | bytes, entry: _CertEntry) -> bool:
    if isinstance(sid, bytes):
        return sid == entry.key_id
    if sid.serial != entry.serial:
        return False
    if sid.issuer_der == entry.issuer_der:
        return True
    # Otherwise compare as RFC 5280 §7.1 names (case and space folding).
    try:
        return bool(sid.issuer == entry.issuer)
    except _DECODE_ERRORS:
        return False  # a name that cannot be normalised matches nothing


def _describe(sid: _IssuerSerial | bytes) -> str:
    if isinstance(sid, bytes):
        return f"subjectKeyIdentifier {sid.hex()}"
    try:
        issuer = sid.issuer.human_friendly  # rendered only when refusing: it is slow
    except _DECODE_ERRORS:
        issuer = "(undecodable name)"
    return f"issuer {issuer} serial {sid.serial:x}"


def _signer(info: _SignerInfo, entry: _CertEntry) -> Signer:
    assert info.scheme is not None
    return Signer(
        certificate=entry.certificate,
        digest_algorithm=info.scheme.digest.name,
        signature_algorithm=info.scheme.name,
        signing_time=info.attributes.signing_time if info.attributes else None,
    )
