"""The Annuaire Santé extraction imported into the compact mailbox file."""

from __future__ import annotations

import random
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from trustfactory import EXTRACTION_COLUMNS, extraction_line, mailbox_values

from relay.cli.main import main
from relay.core.snapshot import MailboxKind
from relay.trust.loader import load_snapshot
from relay.trust.mailboxes import MailboxError, import_extraction, read_mailboxes


def write_extraction(path: Path, rows: list[dict[str, str]], columns=EXTRACTION_COLUMNS) -> Path:
    path.write_text("|".join(columns) + "\n" + "".join(extraction_line(r, columns) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    mailbox_values("PER", "Claire.Martin@Hopital.MSSante.fr", "810000000001", "10", "1750000001"),
    mailbox_values("PER", "jean.adeli@cabinet.mssante.fr", "0751234567", "21", "3123456789"),
    mailbox_values("ORG", "secretariat@hopital.mssante.fr", "", "", "1750000001"),
    mailbox_values("APP", "automate@hopital.mssante.fr"),
    mailbox_values("CAB", "cabinet@cabinet.mssante.fr", structure="3123456789"),
]


def test_import_keeps_only_what_routing_needs(tmp_path: Path) -> None:
    out = tmp_path / "mailboxes.tsv"
    report = import_extraction(write_extraction(tmp_path / "x.txt", ROWS), out)
    assert (report.written, report.bad_count, report.duplicates) == (5, 0, 0)
    entries = read_mailboxes(out.read_bytes())
    claire = entries["Claire.Martin@hopital.mssante.fr"]
    assert (claire.kind, claire.national_id, claire.profession_code, claire.structure_id) == (MailboxKind.PERSONAL, "810000000001", "10", "1750000001")
    assert entries["jean.adeli@cabinet.mssante.fr"].national_id == "0751234567"
    assert entries["automate@hopital.mssante.fr"].national_id is None
    text = out.read_text()
    assert "NOM" not in text and "Prénom" not in text and "rue de la Santé" not in text


def test_columns_are_matched_by_header_name(tmp_path: Path) -> None:
    shuffled = list(EXTRACTION_COLUMNS)
    random.Random(7).shuffle(shuffled)
    out = tmp_path / "m.tsv"
    import_extraction(write_extraction(tmp_path / "x.txt", ROWS, shuffled), out)
    assert read_mailboxes(out.read_bytes())["secretariat@hopital.mssante.fr"].structure_id == "1750000001"


def test_bad_lines_are_reported_with_their_numbers_and_skipped(tmp_path: Path) -> None:
    source = write_extraction(tmp_path / "x.txt", ROWS)
    with source.open("a", encoding="utf-8") as f:
        f.write("PER|short|line\n")
        f.write(extraction_line(mailbox_values("XYZ", "a@b.mssante.fr")) + "\n")
        f.write(extraction_line(mailbox_values("PER", "not-an-address")) + "\n")
        f.write(extraction_line(mailbox_values("PER", "p@b.mssante.fr", "12345")) + "\n")
        f.write(extraction_line(ROWS[0]) + "\n")
    report = import_extraction(source, tmp_path / "m.tsv")
    assert report.written == 5 and report.duplicates == 1
    assert report.bad == [
        "line 7: 3 columns, the header has 31",
        "line 8: unknown mailbox type 'XYZ'",
        "line 9: mailbox address is not an e-mail address",
        "line 10: national identifier is neither 8+RPPS nor 0+ADELI",
    ]


def test_zipped_extraction_through_the_command(example: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "Extraction_Correspondance_MSSante_202601050800.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Extraction_Correspondance_MSSante_202601050800.txt", "|".join(EXTRACTION_COLUMNS) + "\n" + extraction_line(ROWS[0]) + "\n")
    assert main(["directory", "import", "--config", str(example), str(archive)]) == 0
    assert "1 mailboxes from 1 lines" in capsys.readouterr().out
    snapshot = load_snapshot(example)
    assert snapshot.national_id_of("Claire.Martin@hopital.mssante.fr") == "810000000001"
    assert snapshot.national_id_of("claire.martin@hopital-demo.mssante.fr") is None  # replaced, not merged


def test_a_failed_import_keeps_the_previous_file(tmp_path: Path) -> None:
    out = tmp_path / "m.tsv"
    import_extraction(write_extraction(tmp_path / "x.txt", ROWS), out)
    before = out.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_bytes("Type de BAL|Adresse BAL\n".encode())
    with pytest.raises(MailboxError, match="header lacks column"):
        import_extraction(bad, out)
    bad.write_bytes(("|".join(EXTRACTION_COLUMNS) + "\n").encode() + extraction_line(ROWS[0]).encode() + b"\n\xff\xfe|\n")
    with pytest.raises(MailboxError, match="line 3: not UTF-8"):
        import_extraction(bad, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "m.tsv", "x.txt"]


def test_a_damaged_compact_file_is_refused_with_its_line() -> None:
    with pytest.raises(MailboxError, match="line 1"):
        read_mailboxes(b"address\tPER\n")
    with pytest.raises(MailboxError, match="line 3"):
        read_mailboxes(b"relay-mailboxes\t1\na@b.fr\tPER\t\t\t\nb@b.fr\tXXX\t\t\t\n")


def test_a_large_extraction_imports_in_bounded_memory(tmp_path: Path) -> None:
    lines = 200_000  # bench/directory_import.py times half a million
    source = tmp_path / "big.txt"
    template = extraction_line(mailbox_values("PER", "dr{n}@big.mssante.fr", "8{n:011d}", "10", "1750000001"))
    with source.open("w", encoding="utf-8") as f:
        f.write("|".join(EXTRACTION_COLUMNS) + "\n")
        for n in range(lines):
            f.write(template.replace("{n}", str(n)).replace("{n:011d}", f"{n:011d}") + "\n")
    tracemalloc.start()
    try:
        report = import_extraction(source, tmp_path / "m.tsv")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.written == lines and report.bad_count == 0
    # Streamed line by line: what stays is the set of addresses seen (duplicates
    # are dropped), about a hundred bytes a mailbox, never the lines or entries
    # themselves (several hundred bytes each).
    assert peak < 16 * 2**20 + 100 * lines, f"peak {peak / 2**20:.1f} MiB"
