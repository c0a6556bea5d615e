"""A reading of CMS SignedData through asn1crypto's classes, to check the relay's parser-based
reading (relay.core.cms_asn1) against: what the relay did before, field by field."""

from __future__ import annotations

from typing import Any

from asn1crypto import cms, core

from relay.core import cms_asn1 as asn1
from relay.core.cms_asn1 import RawSignedData, RawSignerInfo

_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


class AnySet(core.SetOf):
    _child_spec = core.Any


class Attribute(core.Sequence):
    _fields = [("type", core.ObjectIdentifier), ("values", AnySet)]


class Attributes(core.SetOf):
    _child_spec = Attribute


class SignerInfo(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("sid", cms.SignerIdentifier),
        ("digest_algorithm", cms.DigestAlgorithm),
        ("signed_attrs", Attributes, {"implicit": 0, "optional": True}),
        ("signature_algorithm", cms.SignedDigestAlgorithm),
        ("signature", core.OctetString),
        ("unsigned_attrs", AnySet, {"implicit": 1, "optional": True}),
    ]


class SignerInfos(core.SetOf):
    _child_spec = SignerInfo


class EncapsulatedContentInfo(core.Sequence):
    _fields = [
        ("content_type", core.ObjectIdentifier),
        ("content", core.ParsableOctetString, {"explicit": 0, "optional": True}),
    ]


class SignedData(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("digest_algorithms", AnySet),
        ("encap_content_info", EncapsulatedContentInfo),
        ("certificates", AnySet, {"implicit": 0, "optional": True}),
        ("crls", AnySet, {"implicit": 1, "optional": True}),
        ("signer_infos", SignerInfos),
    ]


class ContentInfo(core.Sequence):
    _fields = [
        ("content_type", core.ObjectIdentifier),
        ("content", core.Any, {"explicit": 0, "optional": True}),
    ]
    _oid_pair = ("content_type", "content")
    _oid_specs = {asn1.ID_SIGNED_DATA: SignedData}


class _Chunks(core.SequenceOf):
    _child_spec = core.OctetString


def read_signed_data(der: bytes) -> RawSignedData:
    """What relay.core.cms_asn1.read_signed_data returns, read through classes; ValueError (or
    another decoding error) when asn1crypto refuses it."""
    info = ContentInfo.load(der, strict=True)
    if asn1.dotted(info["content_type"]) != asn1.ID_SIGNED_DATA:
        raise ValueError("not id-signedData")
    signed = info["content"]
    if not isinstance(signed, SignedData):
        raise ValueError("id-signedData without SignedData")
    encap = signed["encap_content_info"]
    content_type = asn1.dotted(encap["content_type"])
    econtent = encap["content"]
    certificates = signed["certificates"]
    return RawSignedData(
        content_type=content_type,
        econtent=None if isinstance(econtent, core.Void) else _octets(econtent),
        certificates=() if isinstance(certificates, core.Void) else _plain_certificates(certificates),
        signer_infos=tuple(_signer_info(si) for si in signed["signer_infos"]),
    )


def _plain_certificates(choices: AnySet) -> tuple[bytes, ...]:
    """The Certificates (SEQUENCE) of the set; the other CertificateChoices ([0] to [3], all
    constructed) skipped, anything else refused. Read from each element's header as received:
    Any.dump() would parse a context-tagged value without its type, and fail or not by chance."""
    found = []
    for choice in choices:
        encoded = choice._header + choice.contents + (choice._trailer or b"")
        if encoded[0] == 0x30:
            found.append(encoded)
        elif encoded[0] & 0xE0 != 0xA0 or encoded[0] & 0x1F > 3:
            raise ValueError("not a CertificateChoices")
    return tuple(found)


def _signer_info(si: SignerInfo) -> RawSignerInfo:
    attrs = si["signed_attrs"]
    return RawSignerInfo(
        sid=si["sid"].dump(),
        digest_algorithm=si["digest_algorithm"].dump(),
        signed_attrs=None if isinstance(attrs, core.Void) else attrs.contents or b"",
        signature_algorithm=si["signature_algorithm"].dump(),
        signature=si["signature"].native,
    )


def _octets(value: Any) -> bytes:
    if not value._indefinite:  # asn1crypto's flag for a constructed string
        return value.contents or b""
    chunks: list[bytes] = []
    _collect_chunks(value, chunks, depth=0)
    return b"".join(chunks)


def _collect_chunks(value: Any, chunks: list[bytes], depth: int) -> None:
    if depth > 8:
        raise ValueError("OCTET STRING chunks nested too deep")
    for chunk in _Chunks.load(asn1.with_header(0x30, value.contents or b"")):
        if chunk._indefinite:
            _collect_chunks(chunk, chunks, depth + 1)
        else:
            chunks.append(chunk.contents or b"")


def canonical(der: bytes) -> bool:
    """Whether der is a ContentInfo that asn1crypto's complete CMS schema reads in full, every
    field by its type, with no value after a structure's last field, and encodes again to the
    same bytes (DER)."""
    try:
        parsed = cms.ContentInfo.load(der, strict=True)
        parsed.native  # noqa: B018 - reads every field by its type
        return _only_schema_fields(parsed) and parsed.dump(force=True) == der
    except Exception:  # asn1crypto fails in many ways on what it cannot read (AttributeError on a REAL, say)
        return False


def _only_schema_fields(value: Any) -> bool:
    if isinstance(value, core.Sequence):
        if len(value.children or ()) > len(value._fields):  # asn1crypto keeps extra values unchecked
            return False
        return all(_only_schema_fields(value[field[0]]) for field in value._fields)
    if isinstance(value, core.SequenceOf):  # SET OF too
        return all(_only_schema_fields(child) for child in value)
    if isinstance(value, core.Choice):
        return _only_schema_fields(value.chosen)
    return True
