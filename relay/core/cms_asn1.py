"""Lean asn1crypto specifications for reading a CMS SignedData (RFC 5652 §5).

asn1crypto's own classes type every field by its OID: they parse eContent
as a nested structure when its type says so, build every attribute value and
every certificate as they go. Verification needs less, and needs the bytes
as received: these specifications keep eContent, attribute values and
certificates opaque (Any), and the verifier parses only what it reads.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator, NamedTuple

from asn1crypto import cms, core, parser

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"


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
        ("certificates", AnySet, {"implicit": 0, "optional": True}),  # CertificateChoices
        ("crls", AnySet, {"implicit": 1, "optional": True}),
        ("signer_infos", SignerInfos),
    ]


class ContentInfo(core.Sequence):
    _fields = [
        ("content_type", core.ObjectIdentifier),
        ("content", core.Any, {"explicit": 0, "optional": True}),
    ]
    _oid_pair = ("content_type", "content")
    _oid_specs = {"1.2.840.113549.1.7.2": SignedData}


class _Chunks(core.SequenceOf):
    _child_spec = core.OctetString


def dotted(oid: core.ObjectIdentifier) -> str:
    return _oid_text(oid.contents or b"")


@lru_cache(maxsize=256)
def _oid_text(contents: bytes) -> str:
    """Decoding OIDs is a hot path; the same few dozen recur in every message."""
    return core.ObjectIdentifier.load(with_header(0x06, contents)).dotted


class Value(NamedTuple):
    """One encoded value: its tag, its whole encoding and its contents."""

    tag_class: int  # 0 universal, 1 application, 2 context, 3 private
    constructed: bool
    tag: int
    encoded: bytes
    contents: bytes


_UNIVERSAL_OID, _UNIVERSAL_SEQUENCE, _UNIVERSAL_SET = 6, 16, 17


def values_in(data: bytes) -> Iterator[Value]:
    """The values of a concatenation (the contents of a SEQUENCE or SET), with
    asn1crypto's parser: no object per value, where a class built from a
    specification makes several."""
    pointer = 0
    while pointer < len(data):
        tag_class, method, tag, header, contents, trailer = parser.parse(data[pointer:])
        end = pointer + len(header) + len(contents) + len(trailer)
        yield Value(tag_class, method == 1, tag, data[pointer:end], contents)
        pointer = end


def attributes_in(contents: bytes) -> Iterator[tuple[str, bytes]]:
    """Each Attribute of a SET OF Attribute (RFC 5652 §5.3): its type and the
    contents of its SET of values, read only by the caller that wants them."""
    for attribute in values_in(contents):
        if (attribute.tag_class, attribute.constructed, attribute.tag) != (0, True, _UNIVERSAL_SEQUENCE):
            raise ValueError("an attribute is not a SEQUENCE")
        fields = list(values_in(attribute.contents))
        if (
            len(fields) != 2
            or (fields[0].tag_class, fields[0].constructed, fields[0].tag) != (0, False, _UNIVERSAL_OID)
            or (fields[1].tag_class, fields[1].constructed, fields[1].tag) != (0, True, _UNIVERSAL_SET)
        ):
            raise ValueError("an attribute is not an OBJECT IDENTIFIER and a SET of values")
        yield _oid_text(fields[0].contents), fields[1].contents


def is_certificate(choice: core.Any) -> bool:
    """CertificateChoices: a plain Certificate is the untagged SEQUENCE; the rest are [0]..[3]."""
    return choice.dump()[:1] == b"\x30"


def with_header(tag: int, contents: bytes) -> bytes:
    """A definite-length DER header for contents, then the contents as they are."""
    size = len(contents)
    if size < 0x80:
        return bytes([tag, size]) + contents
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + contents


def octets(value: core.OctetString | core.ParsableOctetString) -> bytes:
    """The octets of a primitive, or BER constructed (chunked), OCTET STRING."""
    if not value._indefinite:  # asn1crypto's flag for a constructed string
        return value.contents or b""
    chunks: list[bytes] = []
    _collect_chunks(value, chunks, depth=0)
    return b"".join(chunks)  # one copy, where asn1crypto's own merge appends chunk after chunk


def _collect_chunks(value: core.OctetString | core.ParsableOctetString, chunks: list[bytes], depth: int) -> None:
    if depth > 8:
        raise ValueError("OCTET STRING chunks nested too deep")
    for chunk in _Chunks.load(with_header(0x30, value.contents or b"")):
        if chunk._indefinite:
            _collect_chunks(chunk, chunks, depth + 1)
        else:
            chunks.append(chunk.contents or b"")
