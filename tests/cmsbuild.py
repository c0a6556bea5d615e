"""A small CMS SignedData builder for tests: well-formed, unusual and broken signatures.

Real signing engines refuse to produce most broken structures, so negative
tests craft them here with asn1crypto and sign with cryptography.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from relay.devpki import Issued

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"

_HASHES = {"md5": hashes.MD5, "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def attributes(
    content: bytes,
    digest: str = "sha256",
    *,
    content_type: str = ID_DATA,
    message_digest: bytes | None = None,
    signing_time: dt.datetime | None = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc),
    omit: Sequence[str] = (),
    extra: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Signed attributes for content; omit names any of content_type, message_digest, signing_time."""
    attrs: list[dict[str, Any]] = []
    if "content_type" not in omit:
        attrs.append({"type": "content_type", "values": [content_type]})
    if "message_digest" not in omit:
        value = message_digest if message_digest is not None else hashlib.new(digest, content).digest()
        attrs.append({"type": "message_digest", "values": [value]})
    if signing_time is not None and "signing_time" not in omit:
        attrs.append({"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]})
    return attrs + list(extra)


@dataclass
class SignerSpec:
    """How one SignerInfo is made; defaults give a sound RSA/ECDSA signature with attributes."""

    signer: Issued
    digest: str = "sha256"
    signature_oid: str | None = None  # None: chosen from the key and digest
    pss_salt: int | None = None  # set: RSASSA-PSS with this salt length
    pss_params: dict[str, Any] | None = None  # explicit RSASSA-PSS parameters to state
    attrs: list[dict[str, Any]] | None = field(default=None)  # None: attributes(content, digest)
    no_attrs: bool = False
    keep_order: bool = False  # encode attrs in the given order, not DER-sorted
    sid: str = "issuer_serial"  # or "ski"
    ski: bytes | None = None  # the subjectKeyIdentifier to state
    printable_issuer: bool = False  # state the issuer with PrintableStrings: same name, other bytes
    corrupt: bool = False  # flip a bit of the signature


def signer_info(spec: SignerSpec, content: bytes) -> cms.SignerInfo:
    signed_attrs = None
    to_sign = content
    if not spec.no_attrs:
        attrs = spec.attrs if spec.attrs is not None else attributes(content, spec.digest)
        signed_attrs = _in_order(attrs) if spec.keep_order else cms.CMSAttributes(attrs)
        to_sign = signed_attrs.dump()  # SET OF with its universal tag
    signature = _sign(spec, to_sign)
    if spec.corrupt:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    info: dict[str, Any] = {
        "version": "v3" if spec.sid == "ski" else "v1",
        "sid": _sid(spec),
        "digest_algorithm": {"algorithm": spec.digest},
        "signature_algorithm": _signature_algorithm(spec),
        "signature": signature,
    }
    if signed_attrs is not None:
        info["signed_attrs"] = signed_attrs
    return cms.SignerInfo(info)


def signed_data(
    infos: Sequence[cms.SignerInfo],
    certificates: Sequence[Any],
    *,
    econtent: bytes | None = None,
    content_type: str = ID_DATA,
    encap_der: bytes | None = None,
) -> bytes:
    """A ContentInfo; certificates are cryptography certificates or raw DER bytes.

    encap_der replaces the EncapsulatedContentInfo with BER made elsewhere
    (see chunked_encap); the enclosing structures then use indefinite lengths.
    """
    encap: dict[str, Any] = {"content_type": content_type}
    if econtent is not None:
        encap["content"] = econtent
    digests = {info["digest_algorithm"]["algorithm"].native for info in infos}
    signed: dict[str, Any] = {
        "version": "v1",
        "digest_algorithms": [{"algorithm": d} for d in sorted(digests)],
        # asn1crypto types this field as a ContentInfo
        "encap_content_info": cms.ContentInfo.load(_OpaqueEncap(encap).dump()),
        "signer_infos": list(infos),
    }
    if certificates:
        signed["certificates"] = [_certificate(c) for c in certificates]
    if encap_der is not None:
        return _with_encap(cms.SignedData(signed), encap_der)
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed)}).dump()


def _with_encap(signed: cms.SignedData, encap_der: bytes) -> bytes:
    # asn1crypto re-encodes whatever it dumps as DER, so BER is assembled by hand.
    fields = [signed[name].dump() for name in ("version", "digest_algorithms")]
    fields += [encap_der] + [signed[name].dump() for name in ("certificates", "signer_infos")]
    body = b"\x30\x80" + b"".join(fields) + b"\x00\x00"
    return b"\x30\x80" + core.ObjectIdentifier(ID_SIGNED_DATA).dump() + b"\xa0\x80" + body + b"\x00\x00\x00\x00"


def sign(content: bytes, spec: SignerSpec, *, detached: bool = True, extra_certs: Sequence[Any] = ()) -> bytes:
    """One signer, its certificate in the set: the common case."""
    info = signer_info(spec, content)
    return signed_data([info], [spec.signer.cert, *extra_certs], econtent=None if detached else content)


class _OpaqueEncap(core.Sequence):
    """asn1crypto's EncapsulatedContentInfo types eContent by content type; tests need any octets."""

    _fields = [
        ("content_type", cms.ContentType),
        ("content", core.OctetString, {"explicit": 0, "optional": True}),
    ]


def chunked_encap(content: bytes, chunk_size: int, *, nest: bool = False) -> bytes:
    """A BER EncapsulatedContentInfo whose eContent is an indefinite-length constructed
    OCTET STRING of chunk_size pieces, as streaming engines emit; nest wraps every
    other chunk in a constructed string of its own."""
    chunks = []
    for i, at in enumerate(range(0, len(content), chunk_size)):
        piece = core.OctetString(content[at : at + chunk_size]).dump()
        chunks.append(b"\x24\x80" + piece + b"\x00\x00" if nest and i % 2 else piece)
    econtent = b"\x24\x80" + b"".join(chunks) + b"\x00\x00"
    oid = core.ObjectIdentifier(ID_DATA).dump()
    return b"\x30\x80" + oid + b"\xa0\x80" + econtent + b"\x00\x00" + b"\x00\x00"


def _in_order(attrs: Sequence[dict[str, Any]]) -> cms.CMSAttributes:
    """asn1crypto sorts a SET OF it builds; loaded bytes are kept as they are."""
    contents = b"".join(cms.CMSAttribute(a).dump() for a in attrs)
    size = len(contents)
    assert size < 256
    return cms.CMSAttributes.load(bytes([0x31, size] if size < 0x80 else [0x31, 0x81, size]) + contents)


def _certificate(cert: Any) -> cms.CertificateChoices:
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(der)})


def _sid(spec: SignerSpec) -> cms.SignerIdentifier:
    cert = asn1_x509.Certificate.load(spec.signer.cert.public_bytes(serialization.Encoding.DER))
    if spec.sid == "ski":
        return cms.SignerIdentifier({"subject_key_identifier": spec.ski or cert.key_identifier})
    issuer = asn1_x509.Name.build(cert.issuer.native, use_printable=True) if spec.printable_issuer else cert.issuer
    return cms.SignerIdentifier({"issuer_and_serial_number": {"issuer": issuer, "serial_number": cert.serial_number}})


def _signature_algorithm(spec: SignerSpec) -> dict[str, Any]:
    if spec.signature_oid is not None:
        return {"algorithm": spec.signature_oid}
    key = spec.signer.key
    if spec.pss_salt is not None or spec.pss_params is not None:
        params = spec.pss_params if spec.pss_params is not None else {
            "hash_algorithm": {"algorithm": spec.digest},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": spec.digest}},
            "salt_length": spec.pss_salt,
        }
        # an empty dict would leave asn1crypto's value unset rather than an empty SEQUENCE
        stated = algos.RSASSAPSSParams(params) if params else algos.RSASSAPSSParams.load(b"\x30\x00")
        return {"algorithm": "rsassa_pss", "parameters": stated}
    if isinstance(key, rsa.RSAPrivateKey):
        return {"algorithm": f"{spec.digest}_rsa"}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"algorithm": f"{spec.digest}_ecdsa"}
    return {"algorithm": "ed25519"}


def _sign(spec: SignerSpec, data: bytes) -> bytes:
    key = spec.signer.key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    algorithm = _HASHES[spec.digest]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    if spec.pss_salt is not None:
        return key.sign(data, padding.PSS(padding.MGF1(algorithm), spec.pss_salt), algorithm)
    return key.sign(data, padding.PKCS1v15(), algorithm)
