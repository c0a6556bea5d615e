"""The signed-attribute reader walks the SET with asn1crypto's parser; it must read what
asn1crypto's own classes read, and refuse what they refuse."""

from __future__ import annotations

from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay import devpki
from relay.core import cms
from relay.core import cms_asn1 as asn1
from relay.core.errors import Rejection
from tests import cms_reference, cmsbuild
from tests.cmsbuild import SignerSpec
from tests.mutation import EDITS, Edit, mutate

CONTENT = b"Content-Type: text/plain\r\n\r\nCompte rendu.\r\n"
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


def _reference(contents: bytes, content_type: str) -> Any:
    """The reading through asn1crypto classes, element by element (what the relay did before)."""
    attrs = cms_reference.Attributes.load(asn1.with_header(0x31, contents), strict=True)
    found: dict[str, Any] = {}
    for attr in attrs:
        kind = asn1.dotted(attr["type"])
        spec = cms._ATTRIBUTE_SPECS.get(kind)
        if spec is None:
            continue
        values = attr["values"]
        if kind in found or len(values) != 1:
            raise Rejection(cms.Reason.MALFORMED, "once")
        found[kind] = values[0].parse(spec)
    if cms._ATTR_CONTENT_TYPE not in found or cms._ATTR_MESSAGE_DIGEST not in found:
        raise Rejection(cms.Reason.MALFORMED, "lacking")
    if asn1.dotted(found[cms._ATTR_CONTENT_TYPE]) != content_type:
        raise Rejection(cms.Reason.MALFORMED, "differs")
    time = found.get(cms._ATTR_SIGNING_TIME)
    return found[cms._ATTR_MESSAGE_DIGEST].native, cms._signing_time(time)


def _outcome(read: Any) -> Any:
    """What was read, or the refusal's reason; an encoding fault is `malformed`, as cms._read makes it."""
    try:
        return read()
    except Rejection as refusal:
        return refusal.reason
    except _DECODE_ERRORS:
        return cms.Reason.MALFORMED


def _read(contents: bytes, content_type: str) -> Any:
    signed = cms._signed_attributes(contents, content_type)  # what read_signed_data hands over
    assert signed is not None and signed.der == asn1.with_header(0x31, contents)
    return signed.message_digest, signed.signing_time


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    ca = devpki.make_ca("IGC-SANTE TEST")
    signer = devpki.make_leaf(ca, devpki.practitioner_subject("899700367917", "DUPONT", "Jean"), key_kind="p256")
    extra = [{"type": "1.2.840.113549.1.9.15", "values": [core.Any.load(b"\x30\x03\x02\x01\x05")]}]
    out = []
    for attrs in (cmsbuild.attributes(CONTENT), cmsbuild.attributes(CONTENT, extra=extra)):
        der = cmsbuild.sign(CONTENT, SignerSpec(signer, attrs=attrs))
        info = asn1_cms.ContentInfo.load(der)["content"]["signer_infos"][0]
        out.append(info["signed_attrs"].contents)
    return out


def test_the_seeds_read_alike(seeds: list[bytes]) -> None:
    for contents in seeds:
        digest, when = _read(contents, asn1.ID_DATA)
        assert (digest, when) == _reference(contents, asn1.ID_DATA) and len(digest) == 32 and when is not None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), edits=EDITS)
def test_mutated_attributes_read_alike_or_are_refused_alike(seeds: list[bytes], data: st.DataObject, edits: list[Edit]) -> None:
    mutated = mutate(data.draw(st.sampled_from(seeds)), edits)
    if not mutated:
        return
    ours = _outcome(lambda: _read(mutated, asn1.ID_DATA))
    theirs = _outcome(lambda: _reference(mutated, asn1.ID_DATA))
    # Stricter only where an Attribute is not the DER of RFC 5652's schema in a
    # part the reference never opened (an unknown type whose values are not a
    # SET, a third field): signed attributes are DER-encoded (RFC 5652 §5.4).
    assert ours == theirs or (ours is cms.Reason.MALFORMED and not _schema_valid(mutated)), (mutated.hex(), ours, theirs)


def _schema_valid(contents: bytes) -> bool:
    """Whether every Attribute is exactly an OID and a SET of values, as DER encodes them."""
    try:
        for attr in cms_reference.Attributes.load(asn1.with_header(0x31, contents), strict=True):
            if len(attr) != 2 or attr.dump(force=True) != attr.dump():  # a third field; not DER
                return False
        return True
    except _DECODE_ERRORS:
        return False
