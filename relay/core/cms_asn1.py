"""Reading a CMS SignedData (RFC 5652 §5) with asn1crypto's parser.

Verification needs a few fields, as the bytes received: the content, the
certificates, and for each SignerInfo its identifier, algorithms, signed
attributes and signature. asn1crypto's classes build several objects per
field, check a field's tag only when it is read, and copy a large eContent
at every level. Here the tag-length-value structure is walked by offsets
(definite lengths read here, indefinite ones by asn1crypto's parser; nothing
is copied until asked for, so a 30 MB eContent is copied once), every field of the schema has its tag
checked, also those that are then skipped (version, digestAlgorithms, crls,
unsignedAttrs), and nothing may follow a structure's last field.

BER is read as asn1crypto reads it: indefinite lengths anywhere, and an
OCTET STRING sent in chunks (constructed) when its length is indefinite.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Iterator, NamedTuple

from asn1crypto import core, parser

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"

_UNIVERSAL, _CONTEXT = 0, 2
_MAX_CHUNK_NESTING = 8
# Counts no real signature comes near, so that a crafted one costs little to refuse.
MAX_CERTIFICATES, MAX_SIGNER_INFOS, MAX_ATTRIBUTES = 64, 16, 64
_MAX_CHUNKS = 1 << 20  # an eContent of 50 MB in chunks of 50 bytes


class Value(NamedTuple):
    """One encoded value, by its offsets in the buffer it lies in: its bytes are
    copied only when asked for, so a large eContent is copied once, at the end."""

    data: bytes
    start: int  # its first octet
    contents_start: int
    contents_end: int  # before an indefinite length's 00 00
    end: int
    tag_class: int  # 0 universal, 1 application, 2 context, 3 private
    constructed: bool
    tag: int

    @property
    def encoded(self) -> bytes:
        return self.data[self.start : self.end]

    @property
    def contents(self) -> bytes:
        return self.data[self.contents_start : self.contents_end]

    @property
    def indefinite(self) -> bool:
        """BER indefinite length: the contents end with a 00 00 trailer."""
        return self.end != self.contents_end


# (class, constructed, tag) of what the schema expects
_SEQUENCE = (_UNIVERSAL, True, 16)
_SET = (_UNIVERSAL, True, 17)
_OID = (_UNIVERSAL, False, 6)
_INTEGER = (_UNIVERSAL, False, 2)
_OCTET_STRING = 4


@dataclass(frozen=True, slots=True)
class RawSignerInfo:
    sid: bytes  # encoding of the SignerIdentifier
    digest_algorithm: bytes  # encoding of the DigestAlgorithmIdentifier
    signed_attrs: bytes | None  # contents of the [0] IMPLICIT SET OF Attribute, None when absent
    signature_algorithm: bytes  # encoding of the SignatureAlgorithmIdentifier
    signature: bytes


@dataclass(frozen=True, slots=True)
class RawSignedData:
    content_type: str  # eContentType
    econtent: bytes | None  # None when absent (detached signature)
    certificates: tuple[bytes, ...]  # encodings of the plain Certificates of the set, in order
    signer_infos: tuple[RawSignerInfo, ...]


def read_signed_data(der: bytes) -> RawSignedData:
    """The fields of a ContentInfo holding a SignedData; ValueError naming the first fault."""
    info = _whole(der)
    fields = _Fields(info, "ContentInfo")
    content_type = _oid_text(fields.take(_OID, "contentType").contents)
    if content_type != ID_SIGNED_DATA:
        raise ValueError(f"content type {content_type} is not id-signedData")
    explicit = fields.optional((_CONTEXT, True, 0))
    fields.end()
    if explicit is None:
        raise ValueError("id-signedData without SignedData")
    return _signed_data(_explicit(explicit, "ContentInfo content"))


def _signed_data(value: Value) -> RawSignedData:
    fields = _Fields(value, "SignedData")
    fields.take(_INTEGER, "version")
    fields.take(_SET, "digestAlgorithms")
    content_type, econtent = _encapsulated(fields.take(_SEQUENCE, "encapContentInfo"))
    certificates = fields.optional((_CONTEXT, True, 0))
    fields.optional((_CONTEXT, True, 1))  # crls: nothing a signer is judged by
    signer_infos = fields.take(_SET, "signerInfos")
    fields.end()
    return RawSignedData(
        content_type=content_type,
        econtent=econtent,
        certificates=_certificates(certificates) if certificates else (),
        signer_infos=tuple(_signer_info(v) for v in _at_most(_children(signer_infos), MAX_SIGNER_INFOS, "SignerInfos")),
    )


def _certificates(choices: Value) -> tuple[bytes, ...]:
    """The plain Certificates of a SET OF CertificateChoices, in order; the other
    choices ([0] to [3]: attribute certificates and other formats) say nothing
    about signers and are skipped."""
    found = []
    for choice in _at_most(_children(choices), MAX_CERTIFICATES, "certificates"):
        if _kind(choice) == _SEQUENCE:
            found.append(choice.encoded)
        elif (choice.tag_class, choice.constructed) != (_CONTEXT, True) or choice.tag > 3:
            raise ValueError("an element of the certificate set is none of the CertificateChoices")
    return tuple(found)


def _encapsulated(value: Value) -> tuple[str, bytes | None]:
    fields = _Fields(value, "EncapsulatedContentInfo")
    content_type = _oid_text(fields.take(_OID, "eContentType").contents)
    explicit = fields.optional((_CONTEXT, True, 0))
    fields.end()
    return content_type, octets(_explicit(explicit, "eContent")) if explicit else None


def _signer_info(value: Value) -> RawSignerInfo:
    fields = _Fields(value, "SignerInfo")
    fields.take(_INTEGER, "version")
    sid = fields.take_any("sid")
    if _kind(sid) not in (_SEQUENCE, (_CONTEXT, False, 0)):
        raise ValueError("SignerInfo: sid is neither issuerAndSerialNumber nor subjectKeyIdentifier")
    digest_algorithm = fields.take(_SEQUENCE, "digestAlgorithm")
    signed_attrs = fields.optional((_CONTEXT, True, 0))
    signature_algorithm = fields.take(_SEQUENCE, "signatureAlgorithm")
    signature = fields.take_any("signature")
    fields.optional((_CONTEXT, True, 1))  # unsignedAttrs
    fields.end()
    return RawSignerInfo(
        sid=sid.encoded,
        digest_algorithm=digest_algorithm.encoded,
        signed_attrs=signed_attrs.contents if signed_attrs else None,
        signature_algorithm=signature_algorithm.encoded,
        signature=octets(signature),
    )


class _Fields:
    """The values inside a SEQUENCE, taken in schema order, one at a time: a
    structure with a million values is refused after its last field, not read whole."""

    def __init__(self, value: Value, name: str) -> None:
        if _kind(value) != _SEQUENCE:
            raise ValueError(f"{name} is not a SEQUENCE")
        self.name = name
        self._values = _children(value)
        self._next: Value | None = next(self._values, None)

    def take(self, kind: tuple[int, bool, int], field: str) -> Value:
        found = self.optional(kind)
        if found is None:
            raise ValueError(f"{self.name}: {field} missing or of the wrong type")
        return found

    def take_any(self, field: str) -> Value:
        if self._next is None:
            raise ValueError(f"{self.name}: {field} missing")
        return self._advance()

    def optional(self, kind: tuple[int, bool, int]) -> Value | None:
        if self._next is not None and _kind(self._next) == kind:
            return self._advance()
        return None

    def end(self) -> None:
        if self._next is not None:
            raise ValueError(f"{self.name}: a value after its last field")

    def _advance(self) -> Value:
        taken, self._next = self._next, next(self._values, None)
        assert taken is not None
        return taken


def _at_most(values: Iterator[Value], limit: int, what: str) -> Iterator[Value]:
    for count, value in enumerate(values, start=1):
        if count > limit:
            raise ValueError(f"more than {limit} {what}")
        yield value


def _kind(value: Value) -> tuple[int, bool, int]:
    return value.tag_class, value.constructed, value.tag


def _whole(der: bytes) -> Value:
    value = _value_at(der, 0, len(der))
    if value.end != len(der):
        raise ValueError(f"{len(der) - value.end} bytes after the ContentInfo")
    return value


def _explicit(value: Value, name: str) -> Value:
    """The single value an EXPLICIT tag wraps."""
    inner = list(islice(_children(value), 2))
    if len(inner) != 1:
        raise ValueError(f"{name}: {'no value' if not inner else 'more than one value'} in an explicit tag")
    return inner[0]


def values_in(data: bytes) -> Iterator[Value]:
    """The values of a concatenation (the contents of a SEQUENCE or SET)."""
    return _values_between(data, 0, len(data))


def _children(value: Value) -> Iterator[Value]:
    return _values_between(value.data, value.contents_start, value.contents_end)


def _values_between(data: bytes, start: int, end: int) -> Iterator[Value]:
    pointer = start
    while pointer < end:
        value = _value_at(data, pointer, end)
        yield value
        pointer = value.end


def _value_at(data: bytes, pointer: int, limit: int) -> Value:
    """The value at pointer, which must end by limit, read by offsets (no copy of its contents).

    Definite lengths (all of DER) are read here; an indefinite length (BER)
    goes to asn1crypto's parser, which finds its end by walking the values
    inside. The checks are the parser's: a minimal high tag number, and the
    value within limit.
    """
    if pointer >= limit:
        raise ValueError("no value where one was expected")
    first = data[pointer]
    at, tag = pointer + 1, first & 0x1F
    if tag == 0x1F:  # high tag number form: base-128 octets follow
        tag = 0
        while True:
            if at >= limit:
                raise ValueError("a tag runs past the end of its value")
            octet = data[at]
            at += 1
            if octet == 0x80 and tag == 0:
                raise ValueError("non-minimal tag encoding")
            tag = tag << 7 | octet & 0x7F
            if not octet & 0x80:
                break
        if tag < 0x1F:
            raise ValueError("non-minimal tag encoding")
    if at >= limit:
        raise ValueError("a length runs past the end of its value")
    length = data[at]
    at += 1
    if length == 0x80:
        contents_start, end = parser._parse(data, limit, pointer, lengths_only=True)
        return Value(data, pointer, contents_start, end - 2, end, first >> 6, bool(first & 0x20), tag)
    if length > 0x80:
        count = length & 0x7F  # octets cut short by limit leave `at` past it: refused below
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    end = at + length
    if end > limit:
        raise ValueError("a value longer than what holds it")
    return Value(data, pointer, at, end, end, first >> 6, bool(first & 0x20), tag)


def octets(value: Value) -> bytes:
    """The octets of an OCTET STRING: primitive, or in chunks under an indefinite length (BER)."""
    chunks: list[memoryview] = []
    _collect_chunks(value, chunks, depth=0)
    # Views of the buffer until here: the content is copied once, chunked or not.
    return bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)


def _collect_chunks(value: Value, chunks: list[memoryview], depth: int) -> None:
    if (value.tag_class, value.tag) != (_UNIVERSAL, _OCTET_STRING):
        raise ValueError("not an OCTET STRING")
    if not value.constructed:
        chunks.append(memoryview(value.data)[value.contents_start : value.contents_end])
        return
    if not value.indefinite:
        raise ValueError("an OCTET STRING in chunks without an indefinite length")
    if depth > _MAX_CHUNK_NESTING:
        raise ValueError("OCTET STRING chunks nested too deep")
    for chunk in _children(value):
        _collect_chunks(chunk, chunks, depth + 1)
        if len(chunks) > _MAX_CHUNKS:
            raise ValueError(f"an OCTET STRING in more than {_MAX_CHUNKS} chunks")


def attributes_in(contents: bytes) -> Iterator[tuple[str, bytes]]:
    """Each Attribute of a SET OF Attribute (RFC 5652 §5.3): its type and the
    contents of its SET of values, read only by the caller that wants them."""
    for attribute in _at_most(values_in(contents), MAX_ATTRIBUTES, "signed attributes"):
        if _kind(attribute) != _SEQUENCE:
            raise ValueError("an attribute is not a SEQUENCE")
        fields = list(islice(_children(attribute), 3))
        if len(fields) != 2 or _kind(fields[0]) != _OID or _kind(fields[1]) != _SET:
            raise ValueError("an attribute is not an OBJECT IDENTIFIER and a SET of values")
        yield _oid_text(fields[0].contents), fields[1].contents


def dotted(oid: core.ObjectIdentifier) -> str:
    return _oid_text(oid.contents or b"")


def _oid_text(contents: bytes) -> str:
    # The cache holds what a sender chose: only OIDs of a plausible length enter it.
    return _known_oid_text(contents) if len(contents) <= 32 else _decoded_oid(contents)


@lru_cache(maxsize=256)
def _known_oid_text(contents: bytes) -> str:
    """Decoding OIDs is a hot path; the same few dozen recur in every message."""
    return _decoded_oid(contents)


def _decoded_oid(contents: bytes) -> str:
    return core.ObjectIdentifier.load(with_header(0x06, contents)).dotted


def with_header(tag: int, contents: bytes) -> bytes:
    """A definite-length DER header for contents, then the contents as they are."""
    size = len(contents)
    if size < 0x80:
        return bytes([tag, size]) + contents
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + contents
