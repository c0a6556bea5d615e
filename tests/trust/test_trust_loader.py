"""The loader's contracts: versions, real whitelist through the config, robustness on junk."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trustfactory import SHARED_MSSANTE, whitelist_xml

from relay.core.snapshot import TlsMode
from relay.trust.dn import DnError, normalise_dn
from relay.trust.loader import ConfigError, load_directory, load_snapshot
from relay.trust.mailboxes import MailboxError, read_mailboxes
from relay.trust.problems import Problems
from relay.trust.tomlsource import index_lines, parse_toml
from relay.trust.whitelist import WhitelistError, parse_whitelist


def point_whitelist_at(config: Path, xml: Path, sha256: Path | None) -> None:
    whitelist = config.parent / "trust" / "whitelist.toml"
    text = whitelist.read_text().replace('"whitelist/listeblanchemssante-sample.xml"', f'"{xml}"')
    text = text.replace('"whitelist/listeblanchemssante-sample.xml.sha256"', f'"{sha256}"' if sha256 else '""')
    if sha256 is None:
        text = text.replace('sha256_file = ""\n', "")
    whitelist.write_text(text)


@pytest.mark.parametrize("name, checksum, domains", [
    ("listeblanchemssante.xml", True, 516),
    ("listeblanchemssante-full-2025-03-13.xml", False, 5001),
])
def test_real_whitelists_load_through_the_configuration(example: Path, name: str, checksum: bool, domains: int) -> None:
    xml = SHARED_MSSANTE / name
    if not xml.exists():
        pytest.skip(f"real ANS file {xml} is not present (../shared/ is outside the project)")
    point_whitelist_at(example, xml, xml.with_name(name + ".sha256") if checksum else None)
    loaded = load_directory(example)
    whitelisted = [r for r in loaded.snapshot.domains.values() if r.origin.startswith("whitelist")]
    assert len(whitelisted) == domains
    assert loaded.whitelist_domains == domains
    medimail = loaded.snapshot.route("someone@adsea29.mssante.fr")
    assert medimail.known and not medimail.local and medimail.next_hop.tls is TlsMode.STARTTLS
    assert normalise_dn("CN=medimail-asip.mipih.fr, OU=318310021300028, O=GIP MIPIH, ST=Haute-Garonne (31), C=FR") in medimail.domain.operator_dns


def test_version_follows_every_file_read(example: Path) -> None:
    first = load_snapshot(example).version
    assert load_snapshot(example).version == first
    mailboxes = example.parent / "trust" / "mailboxes.tsv"
    mailboxes.write_text(mailboxes.read_text().replace("\t10\t", "\t21\t", 1))
    second = load_snapshot(example).version
    assert second != first
    crl = example.parent.parent / "certs" / "demo" / "igc-root.crl"
    crl.write_bytes(crl.read_bytes().replace(b"\n", b"\r\n"))
    assert load_snapshot(example).version != second


def test_missing_relay_toml_and_missing_trust_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="relay.toml: No such file"):
        load_directory(tmp_path / "relay.toml")
    (tmp_path / "relay.toml").write_text('\n\ntrust_dir = "nowhere"\n')
    with pytest.raises(ConfigError, match=r"relay.toml:3: trust directory .*nowhere does not exist"):
        load_directory(tmp_path / "relay.toml")


def test_inline_and_dotted_tables_are_located() -> None:
    source = '[a]\nx = 1\nnext_hop = { url = "u" }\n[a.b."c.d"]\ny.z = 2\n[[l]]\nk = 1\n[[l]]\nk = 2\n'
    lines = index_lines(source)
    assert lines[("a", "next_hop")] == 3
    assert lines[("a", "b", "c.d")] == 4
    assert lines[("a", "b", "c.d", "y", "z")] == 5
    assert lines[("l", 1, "k")] == 9
    problems = Problems()
    parsed = parse_toml(Path("f.toml"), source.encode(), problems)
    assert parsed.where(("a", "next_hop", "url")) == "f.toml:3"
    assert parsed.where(("zzz",)) == "f.toml:1"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_junk_whitelists_never_crash(data: bytes) -> None:
    try:
        parse_whitelist(io.BytesIO(data))
    except WhitelistError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=2000))
def test_every_truncation_of_a_whitelist_is_accepted_only_on_entry_boundaries(cut: int) -> None:
    data = whitelist_xml([("a.mssante.fr", "CN=x,C=FR"), ("b.mssante.fr", "CN=y,C=FR")])
    piece = data[: min(cut, len(data))]
    try:
        whitelist = parse_whitelist(io.BytesIO(piece))
    except WhitelistError:
        return
    last_end = piece.rfind(b"</Domaine>")
    assert last_end >= 0
    assert piece[last_end:].strip().endswith((b"</Domaine>", b"</ListeDomaines>"))
    assert len(whitelist.entries) == piece.count(b"</Domaine>")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_junk_dns_never_crash(text: str) -> None:
    try:
        normalise_dn(text)
    except DnError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_junk_mailbox_files_never_crash(data: bytes) -> None:
    try:
        read_mailboxes(b"relay-mailboxes\t1\n" + data)
    except MailboxError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_junk_toml_never_crashes_the_line_index(text: str) -> None:
    problems = Problems()
    parse_toml(Path("x.toml"), text.encode("utf-8", "surrogatepass"), problems)
    assert all(p.startswith("x.toml:") for p in problems.errors)


def test_the_whitelist_is_streamed_never_held_whole(example: Path, tmp_path: Path) -> None:
    sample = (example.parent / "trust" / "whitelist" / "listeblanchemssante-sample.xml").read_bytes()
    head, marker, rest = sample.partition(b"<ListeDomaines>\n")
    assert marker
    padding = (b"    <!-- " + b"-x" * 500 + b" -->\n") * 16_000  # about 16 MB the parser skips
    xml = tmp_path / "padded.xml"
    xml.write_bytes(head + marker + padding + rest)
    checksum = tmp_path / "padded.xml.sha256"
    checksum.write_text(hashlib.sha256(xml.read_bytes()).hexdigest() + "  padded.xml\n")
    point_whitelist_at(example, xml, checksum)
    expected = load_directory(example).whitelist_domains  # and the checksum matched: no ConfigError
    tracemalloc.start()
    try:
        loaded = load_directory(example)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.whitelist_domains == expected > 0
    assert peak < xml.stat().st_size // 4, f"peak {peak} bytes for a {xml.stat().st_size}-byte whitelist"


def test_a_whitelist_cut_short_reports_its_checksum_before_its_xml(example: Path) -> None:
    sample = example.parent / "trust" / "whitelist" / "listeblanchemssante-sample.xml"
    data = sample.read_bytes()
    sample.write_bytes(data[: data.index(b"<DNCertificatOperateur>")])  # cut inside the first entry
    with pytest.raises(ConfigError) as error:
        load_directory(example)
    assert "SHA-256 mismatch" in str(error.value) and "cut inside" not in str(error.value)
