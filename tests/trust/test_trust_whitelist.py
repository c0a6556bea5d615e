"""The MSSanté whitelist: published format, cut files, hostile XML, real files."""

from __future__ import annotations

import hashlib
import io

import pytest
from trustfactory import SHARED_MSSANTE, operator_dn, whitelist_xml

from relay.trust.dn import DnError, normalise_dn, normalise_name
from relay.trust.whitelist import WhitelistError, check_sha256, parse_whitelist


def parse(data: bytes):
    return parse_whitelist(io.BytesIO(data))


def test_several_entries_for_one_domain_give_several_operator_dns() -> None:
    data = whitelist_xml([
        ("cabinet.mssante.fr", operator_dn("mss1.op.fr")),
        ("Cabinet.MSSante.fr", operator_dn("mss2.op.fr")),
        ("labo.mssante.fr", operator_dn("mss1.op.fr")),
    ])
    whitelist = parse(data)
    dns = whitelist.operator_dns()
    assert set(dns) == {"cabinet.mssante.fr", "labo.mssante.fr"}
    assert dns["cabinet.mssante.fr"] == {normalise_dn(operator_dn("mss1.op.fr")), normalise_dn(operator_dn("mss2.op.fr"))}
    assert whitelist.generated == "2025-03-13T14:54:10Z"
    assert [e.line for e in whitelist.entries] == [4, 12, 20]


def test_published_file_without_closing_root_tag_is_accepted_and_so_is_a_closed_one() -> None:
    entries = [("a.mssante.fr", operator_dn("x.fr"))]
    assert parse(whitelist_xml(entries)).entries == parse(whitelist_xml(entries, closed=True)).entries
    # The published files even stop before </ListeDomaines>.
    cut_after_entry = whitelist_xml(entries).rpartition(b"    </ListeDomaines>")[0]
    assert len(parse(cut_after_entry).entries) == 1


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.8])
def test_file_cut_inside_an_entry_is_refused(keep: float) -> None:
    data = whitelist_xml([("a.mssante.fr", operator_dn("x.fr")), ("b.mssante.fr", operator_dn("y.fr"))])
    second = data.index(b"<Domaine>", data.index(b"</Domaine>"))
    end = data.index(b"</Domaine>", second)
    cut = data[: second + int((end - second) * keep)]
    with pytest.raises(WhitelistError, match=r"cut inside the Domaine entry starting at line 12"):
        parse(cut)


def test_file_cut_in_the_middle_of_a_tag_after_the_last_entry_is_refused() -> None:
    data = whitelist_xml([("a.mssante.fr", operator_dn("x.fr"))])
    cut = data[: data.index(b"</ListeDomaines>") + 6]
    with pytest.raises(WhitelistError, match="cut after the last complete entry"):
        parse(cut)


def test_entity_expansion_is_refused_before_parsing() -> None:
    laughs = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10) for i in range(1, 10))
        + b']>\n<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema"><ListeDomaines><Domaine><Nom>&lol9;</Nom>'
        + b"</Domaine></ListeDomaines></ListeBlancheMSSante>\n"
    )
    with pytest.raises(WhitelistError, match="DOCTYPE declarations are refused"):
        parse(laughs)


def test_forbidden_declaration_split_across_read_chunks_is_still_seen() -> None:
    padding = b"<!-- " + b"x" * (65536 - 12) + b" -->"
    data = b'<?xml version="1.0"?>' + padding + b"<!DOCTYPE x []><ListeBlancheMSSante/>"
    with pytest.raises(WhitelistError, match="DOCTYPE"):
        parse(data)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "no usable Domaine entry"),
        (b"<html><body/></html>", "root element"),
        (b"\xff\xfe<\x00", "not UTF-8"),
        (whitelist_xml([]).replace(b"<ListeDomaines>", b"<ListeDomaines><<"), "malformed XML"),
    ],
)
def test_garbage_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(WhitelistError, match=message):
        parse(data)


def test_entries_without_a_domain_name_are_skipped_and_reported() -> None:
    data = whitelist_xml([("bad@name.mssante.fr", operator_dn("x.fr")), ("ok.mssante.fr", "not a DN"), ("good.mssante.fr", operator_dn("x.fr"))])
    whitelist = parse(data)
    assert [e.domain for e in whitelist.entries] == ["good.mssante.fr"]
    assert whitelist.skipped[0].startswith("line 4: Nom 'bad@name.mssante.fr'")
    assert whitelist.skipped[1].startswith("line 12: DNCertificatOperateur 'not a DN'")


def test_published_checksum() -> None:
    data = whitelist_xml([("a.mssante.fr", operator_dn("x.fr"))])
    digest = hashlib.sha256(data).digest()
    check_sha256(digest, digest.hex().encode())
    check_sha256(digest, digest.hex().upper().encode() + b"  listeblanchemssante.xml\n")
    with pytest.raises(WhitelistError, match="SHA-256 mismatch"):
        check_sha256(hashlib.sha256(data + b" ").digest(), digest.hex().encode())
    with pytest.raises(WhitelistError, match="no SHA-256"):
        check_sha256(digest, b"")


def test_operator_dns_compare_as_parsed_rdn_sequences() -> None:
    assert normalise_dn("CN=a, OU=b") == normalise_dn("CN=a,OU=b") == normalise_dn("cn=A,ou=B")
    assert normalise_dn("CN=a+SN=b,C=FR") == normalise_dn("SN=b + CN=a, C=fr")
    assert normalise_dn("CN=a\\,b,O=x") != normalise_dn("CN=a,CN=b,O=x")
    assert normalise_dn("CN=a,OU=b") != normalise_dn("OU=b,CN=a")
    for bad in ("", "CN", "XX=1", "CN=a,,O=b", 'CN="open'):
        with pytest.raises(DnError):
            normalise_dn(bad)


def test_certificate_subjects_compare_with_written_dns() -> None:
    from relay.devpki import organisation_subject, practitioner_subject

    server = organisation_subject("mx.clinique.fr", "1750000002", "CLINIQUE", "Paris (75)")
    assert normalise_name(server) == normalise_dn("CN=mx.clinique.fr, OU=1750000002, O=CLINIQUE, ST=Paris (75), C=FR")
    person = practitioner_subject("810000000001", "MARTIN", "Claire")
    assert normalise_name(person) == normalise_dn("CN=810000000001+SN=MARTIN+GN=Claire,T=Médecin,C=FR")


def _real(name: str):
    path = SHARED_MSSANTE / name
    if not path.exists():
        pytest.skip(f"real ANS file {path} is not present (../shared/ is outside the project)")
    return path


def test_real_published_whitelist_and_its_checksum() -> None:
    path = _real("listeblanchemssante.xml")
    data = path.read_bytes()
    check_sha256(hashlib.sha256(data).digest(), (SHARED_MSSANTE / "listeblanchemssante.xml.sha256").read_bytes())
    whitelist = parse(data)
    assert len(whitelist.entries) == 619 and whitelist.skipped == ()
    assert not data.rstrip().endswith(b"</ListeBlancheMSSante>")


def test_real_full_whitelist() -> None:
    with _real("listeblanchemssante-full-2025-03-13.xml").open("rb") as stream:
        whitelist = parse_whitelist(stream)
    # 6,554 entries for 5,002 domains; one entry names an address, not a domain.
    assert len(whitelist.entries) + len(whitelist.skipped) == 6554
    assert len(whitelist.operator_dns()) == 5001
    assert whitelist.skipped == ("line 48458: Nom 'sessad@ase.ditepbeziers.mssante.fr' is not a domain name",)
    assert max(len(dns) for dns in whitelist.operator_dns().values()) > 1
