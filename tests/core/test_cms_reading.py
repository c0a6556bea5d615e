"""The SignedData reader walks the structure with asn1crypto's parser; it must read what
asn1crypto's own classes read, and refuse what they refuse. It may refuse more, but only
encodings that are not DER of RFC 5652's schema (a value after a structure's last field,
a skipped field of the wrong type)."""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest
from asn1crypto import core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay import devpki
from relay.core import cms_asn1 as asn1
from tests import cms_reference, cmsbuild
from tests.cmsbuild import SignerSpec
from tests.mutation import EDITS, mutate

CONTENT = b"Content-Type: text/plain\r\n\r\nCompte rendu d'hospitalisation.\r\n"
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)
REFUSED = "refused"


def _outcome(read: Any, der: bytes) -> Any:
    try:
        return read(der)
    except _DECODE_ERRORS:
        return REFUSED


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Signatures of several shapes: DER from the builder, BER streamed by OpenSSL."""
    ca = devpki.make_ca("IGC-SANTE TEST")
    rsa = devpki.make_leaf(ca, devpki.practitioner_subject("899700367917", "DUPONT", "Jean"), key_kind="rsa1024")
    p256 = devpki.make_leaf(ca, devpki.practitioner_subject("899700367918", "MARTIN", "Anne"), key_kind="p256")
    two = [cmsbuild.signer_info(SignerSpec(rsa), CONTENT), cmsbuild.signer_info(SignerSpec(p256, sid="ski"), CONTENT)]
    return [
        cmsbuild.sign(CONTENT, SignerSpec(p256)),
        cmsbuild.sign(CONTENT, SignerSpec(rsa, pss_salt=32, sid="ski"), detached=False),
        cmsbuild.signed_data(two, [rsa.cert, p256.cert]),
        _with_unsigned_attributes_and_crls(cmsbuild.sign(CONTENT, SignerSpec(p256), detached=False)),
        _openssl_streamed(tmp_path_factory.mktemp("reading"), p256),
    ]


def _with_unsigned_attributes_and_crls(der: bytes) -> bytes:
    """The SignedData with a CRL set (of another format) and an unsigned attribute (a countersignature's type)."""
    other_crl = asn1.with_header(0xA1, _oid("1.2.3.4") + b"\x05\x00")
    unsigned = asn1.with_header(0xA1, asn1.with_header(0x30, _oid("1.2.840.113549.1.9.6") + asn1.with_header(0x31, b"\x30\x00")))

    def change(fields: list[bytes]) -> None:
        infos = list(asn1.values_in(next(asn1.values_in(fields[-1])).contents))
        first = asn1.with_header(0x30, infos[0].contents + unsigned)
        fields[-1:] = [asn1.with_header(0xA1, other_crl), asn1.with_header(0x31, first + b"".join(i.encoded for i in infos[1:]))]

    return _rebuilt(der, change)


def _oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


def _rebuilt(der: bytes, change: Any) -> bytes:
    """der with the encoded fields of its SignedData changed in place by change(fields)."""
    info = list(asn1.values_in(der))[0]
    content_type, explicit = asn1.values_in(info.contents)
    signed = next(asn1.values_in(explicit.contents))
    fields = [value.encoded for value in asn1.values_in(signed.contents)]
    change(fields)
    return asn1.with_header(0x30, content_type.encoded + asn1.with_header(0xA0, asn1.with_header(0x30, b"".join(fields))))


def _openssl_streamed(tmp: Path, signer: devpki.Issued) -> bytes:
    (tmp / "c.pem").write_bytes(signer.cert_pem)
    (tmp / "k.pem").write_bytes(signer.key_pem)
    (tmp / "m").write_bytes(CONTENT * 200)  # several chunks of eContent
    return subprocess.run(
        ["openssl", "cms", "-sign", "-binary", "-nodetach", "-stream", "-outform", "DER",
         "-in", str(tmp / "m"), "-signer", str(tmp / "c.pem"), "-inkey", str(tmp / "k.pem")],
        check=True, capture_output=True,
    ).stdout


def test_the_seeds_read_alike(seeds: list[bytes]) -> None:
    for der in seeds:
        ours = asn1.read_signed_data(der)
        assert ours == cms_reference.read_signed_data(der)
        assert ours.signer_infos and ours.certificates
    streamed = asn1.read_signed_data(seeds[-1])
    assert streamed.econtent == CONTENT * 200 and not cms_reference.canonical(seeds[-1])  # chunks, indefinite lengths
    assert [s.signed_attrs is None for s in asn1.read_signed_data(seeds[2]).signer_infos] == [False, False]


T = TypeVar("T")


def _peak_memory(work: Callable[[], T]) -> tuple[T, int]:
    """What `work` returns, and the most memory it held at once (tracemalloc)."""
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_econtent_is_copied_once() -> None:
    ca = devpki.make_ca("IGC-SANTE TEST")
    signer = devpki.make_leaf(ca, devpki.practitioner_subject("899700367918", "MARTIN", "Anne"), key_kind="p256")
    content = b"x" * (8 << 20)
    der = cmsbuild.sign(content, SignerSpec(signer), detached=False)
    read, peak = _peak_memory(lambda: asn1.read_signed_data(der))
    assert read.econtent == content
    assert peak < 1.25 * len(content)  # the classes held five copies at once


def test_an_octet_string_in_chunks_is_copied_once() -> None:
    chunk = b"\x04\x82\x10\x00" + b"x" * 4096  # BER: 4 KiB chunks under an indefinite length
    data = b"\x24\x80" + chunk * 2000 + b"\x00\x00"
    value = asn1._value_at(data, 0, len(data))
    content, peak = _peak_memory(lambda: asn1.octets(value))
    assert content == b"x" * (4096 * 2000)
    assert peak < 1.25 * len(content)  # the chunks sliced, then joined, held two copies


def test_a_structure_of_a_million_values_is_refused_before_they_are_read() -> None:
    der = asn1.with_header(0x30, asn1.core.ObjectIdentifier(asn1.ID_SIGNED_DATA).dump() + b"\x05\x00" * 1_000_000)

    def refused() -> None:
        with pytest.raises(ValueError, match="a value after its last field"):
            asn1.read_signed_data(der)

    _, peak = _peak_memory(refused)
    assert peak < 100_000  # the values are never listed


def test_a_long_oid_chosen_by_the_sender_is_not_cached() -> None:
    long_oid = asn1.core.ObjectIdentifier("1.2." + ".".join(["123456789"] * 40)).dump()
    before = asn1._known_oid_text.cache_info().currsize
    with pytest.raises(ValueError, match="is not id-signedData"):
        asn1.read_signed_data(asn1.with_header(0x30, long_oid))
    assert asn1._known_oid_text.cache_info().currsize == before


@pytest.mark.parametrize("what", ["certificates", "SignerInfos"])
def test_counts_are_capped(seeds: list[bytes], what: str) -> None:
    def change(fields: list[bytes]) -> None:
        if what == "certificates":
            certificate = next(asn1.values_in(next(asn1.values_in(fields[3])).contents)).encoded
            fields[3] = asn1.with_header(0xA0, certificate * (asn1.MAX_CERTIFICATES + 1))
        else:
            info = next(asn1.values_in(next(asn1.values_in(fields[-1])).contents)).encoded
            fields[-1] = asn1.with_header(0x31, info * (asn1.MAX_SIGNER_INFOS + 1))

    with pytest.raises(ValueError, match=f"more than .* {what}"):
        asn1.read_signed_data(_rebuilt(seeds[0], change))


@pytest.mark.parametrize(
    "fault",
    ["a value after the last field", "version of the wrong type", "crls of the wrong type", "two values in eContent's tag"],
)
def test_refused_where_the_classes_look_away(seeds: list[bytes], fault: str) -> None:
    der = _faulty(seeds[1], fault)
    assert not cms_reference.canonical(der)
    assert _outcome(cms_reference.read_signed_data, der) != REFUSED  # asn1crypto reads it
    with pytest.raises(ValueError):
        asn1.read_signed_data(der)


def _faulty(der: bytes, fault: str) -> bytes:
    def change(fields: list[bytes]) -> None:
        if fault == "a value after the last field":
            fields.append(b"\x05\x00")
        elif fault == "version of the wrong type":
            fields[0] = b"\x04\x01\x01"
        elif fault == "crls of the wrong type":  # primitive [1]
            fields.insert(len(fields) - 1, b"\x81\x00")
        else:
            content_type, explicit = asn1.values_in(list(asn1.values_in(fields[2]))[0].contents)
            doubled = asn1.with_header(0xA0, explicit.contents + b"\x04\x00")
            fields[2] = asn1.with_header(0x30, content_type.encoded + doubled)

    return _rebuilt(der, change)


@pytest.mark.parametrize(
    "fault", ["signature of the wrong type", "eContent of the wrong type", "eContent in chunks of a definite length"]
)
def test_refused_as_the_classes_refuse(seeds: list[bytes], fault: str) -> None:
    def change(fields: list[bytes]) -> None:
        if fault == "signature of the wrong type":
            info = next(asn1.values_in(next(asn1.values_in(fields[-1])).contents))
            parts = [v.encoded for v in asn1.values_in(info.contents)]
            parts[5] = b"\x03" + parts[5][1:]  # a BIT STRING
            fields[-1] = asn1.with_header(0x31, asn1.with_header(0x30, b"".join(parts)))
        else:
            content_type, explicit = asn1.values_in(next(asn1.values_in(fields[2])).contents)
            octets = next(asn1.values_in(explicit.contents))
            if fault == "eContent of the wrong type":
                wrong = b"\x03" + octets.encoded[1:]
            else:
                wrong = asn1.with_header(0x24, octets.encoded)
            fields[2] = asn1.with_header(0x30, content_type.encoded + asn1.with_header(0xA0, wrong))

    der = _rebuilt(seeds[1], change)
    assert _outcome(cms_reference.read_signed_data, der) == REFUSED
    with pytest.raises(ValueError):
        asn1.read_signed_data(der)


@pytest.mark.parametrize(
    "encoded",
    [
        b"\x1f\x80\x21\x00",  # a high tag number with a leading zero octet
        b"\x1f\x05\x00",  # the high form for a tag below 31
        b"\x1f\xa1",  # a tag cut short
        b"\x04",  # no length
        b"\x04\x05abc",  # contents cut short
        b"\x04\x82\x00",  # length octets cut short
        b"\x24\x80\x04\x01a",  # an indefinite length without its end
        b"\x04\x80",  # an indefinite length on a primitive value
    ],
)
def test_malformed_tags_and_lengths_are_refused(encoded: bytes) -> None:
    with pytest.raises(ValueError):
        list(asn1.values_in(encoded))


def test_no_value_at_all_is_refused() -> None:
    with pytest.raises(ValueError):
        asn1.read_signed_data(b"")


def test_tags_and_lengths_in_every_form_are_read() -> None:
    long_form = b"\x04\x82\x01\x00" + b"x" * 256
    high_tag = b"\xbf\x21\x03\x05\x01y"  # [33] constructed, holding an OCTET STRING
    ber = b"\x24\x80\x04\x01z\x00\x00"
    values = list(asn1.values_in(long_form + high_tag + ber))
    assert [(v.tag_class, v.constructed, v.tag) for v in values] == [(0, False, 4), (2, True, 33), (0, True, 4)]
    assert values[0].contents == b"x" * 256 and values[1].contents == b"\x05\x01y"
    assert asn1.octets(values[2]) == b"z" and values[2].end == len(long_form + high_tag + ber)


def _header_offsets(data: bytes, base: int = 0, depth: int = 0) -> list[int]:
    """Where each tag-length header of the structure starts, down to the certificates."""
    offsets = []
    for value in asn1.values_in(data):
        offsets.append(base + value.start)
        if value.constructed and depth < 6:
            offsets += _header_offsets(value.contents, base + value.contents_start, depth + 1)
    return offsets


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(min_value=0, max_value=4), edits=EDITS, at_headers=st.booleans())
def test_mutations_read_alike_or_are_refused_alike(seeds: list[bytes], index: int, edits: list[tuple[str, int, bytes]], at_headers: bool) -> None:
    der = seeds[index]
    if at_headers:  # the tags and lengths, which the readers judge; elsewhere are the values they pass on
        offsets = _header_offsets(der)
        edits = [(kind, offsets[where % len(offsets)] + where % 3, blob) for kind, where, blob in edits]
    mutated = mutate(der, edits)
    ours = _outcome(asn1.read_signed_data, mutated)
    theirs = _outcome(cms_reference.read_signed_data, mutated)
    assert ours == theirs or (ours == REFUSED and not cms_reference.canonical(mutated)), (index, mutated.hex(), ours, theirs)
