"""The mailbox directory: import of the Annuaire Santé MSSanté extraction and
the compact file the loader reads.

The extraction has 31 `|`-separated columns about people and places; routing
and verification need five, so only those are kept (no names, no postal
addresses). The compact file is one tab-separated line per mailbox after a
format line, fast to read back and easy to inspect.
"""

from __future__ import annotations

import re
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping

from ..core.snapshot import MailboxEntry, MailboxKind, normalise_address
from .atomic import atomic_writer

FORMAT_LINE = "relay-mailboxes\t1"
_KINDS = {kind.value: kind for kind in MailboxKind}
_ADDRESS = re.compile(r"[^@\s|]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
NATIONAL_ID = re.compile(r"8\d{11}|0[0-9A-Z]{9}")  # 8+RPPS or 0+ADELI

COLUMNS = {  # extraction header name -> what it gives
    "kind": "Type de BAL",
    "address": "Adresse BAL",
    "national_id": "Identification nationale PP",
    "profession": "Code Profession",
    "structure": "Identification Structure",
}


class MailboxError(ValueError):
    """A directory file that cannot be used; the message names the line."""


@dataclass
class ImportReport:
    written: int = 0
    lines: int = 0
    duplicates: int = 0
    bad: list[str] = field(default_factory=list)  # "line N: why", first ones only
    bad_count: int = 0

    def reject(self, line: int, why: str, keep: int = 100) -> None:
        self.bad_count += 1
        if len(self.bad) < keep:
            self.bad.append(f"line {line}: {why}")


def read_mailboxes(data: bytes) -> dict[str, MailboxEntry]:
    """Parse the compact file; any bad line refuses the whole file."""
    text = _decode(data)
    lines = text.split("\n")
    if lines[0] != FORMAT_LINE:
        raise MailboxError(f"line 1: expected {FORMAT_LINE!r} (write it with `relay directory import`)")
    entries: dict[str, MailboxEntry] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 5 or fields[1] not in _KINDS:
            raise MailboxError(f"line {number}: expected address, kind, national id, profession, structure")
        address, kind, national_id, profession, structure = fields
        entries[address] = MailboxEntry(address, _KINDS[kind], national_id or None, profession or None, structure or None)
    return entries


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise MailboxError(f"line {line}: not UTF-8") from None


def write_mailboxes(out: IO[bytes], entries: Iterable[MailboxEntry]) -> int:
    out.write(FORMAT_LINE.encode() + b"\n")
    count = 0
    for entry in entries:
        out.write(_line(entry))
        count += 1
    return count


def _line(entry: MailboxEntry) -> bytes:
    fields = (entry.address, entry.kind.value, entry.national_id or "", entry.profession_code or "", entry.structure_id or "")
    return ("\t".join(fields) + "\n").encode()


def import_extraction(source: Path, destination: Path) -> ImportReport:
    """Stream an extraction (plain or zipped) into the compact file, written atomically."""
    report = ImportReport()
    with _open_text(source) as lines, atomic_writer(destination) as out:
        report.written = write_mailboxes(out, _first_of_each(_entries(lines, report), report))
    return report


def _first_of_each(entries: Iterator[MailboxEntry], report: ImportReport) -> Iterator[MailboxEntry]:
    seen: set[str] = set()
    for entry in entries:
        if entry.address in seen:
            report.duplicates += 1
            continue
        seen.add(entry.address)
        yield entry


def _entries(lines: Iterator[str], report: ImportReport) -> Iterator[MailboxEntry]:
    header = next(lines, None)
    if header is None:
        raise MailboxError("line 1: empty file, expected the extraction's header line")
    names = [name.strip() for name in header.lstrip("\ufeff").rstrip("\r\n").split("|")]
    positions = _positions(names)
    for number, line in enumerate(lines, start=2):
        report.lines += 1
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) == len(names) + 1 and fields[-1] == "":
            fields.pop()  # a trailing separator
        if len(fields) != len(names):
            report.reject(number, f"{len(fields)} columns, the header has {len(names)}")
            continue
        entry, why = _entry({key: fields[i].strip() for key, i in positions.items()})
        if entry is None:
            report.reject(number, why)
        else:
            yield entry


def _positions(names: list[str]) -> dict[str, int]:
    missing = [column for column in COLUMNS.values() if column not in names]
    if missing:
        raise MailboxError(f"line 1: header lacks column(s) {', '.join(repr(m) for m in missing)}")
    return {key: names.index(column) for key, column in COLUMNS.items()}


def _entry(values: Mapping[str, str]) -> tuple[MailboxEntry | None, str]:
    kind = _KINDS.get(values["kind"].upper())
    if kind is None:
        return None, f"unknown mailbox type {values['kind']!r}"
    if not _ADDRESS.fullmatch(values["address"]):
        return None, "mailbox address is not an e-mail address"
    national_id = values["national_id"] or None
    if national_id and not NATIONAL_ID.fullmatch(national_id):
        return None, "national identifier is neither 8+RPPS nor 0+ADELI"
    return MailboxEntry(
        normalise_address(values["address"]),
        kind,
        national_id,
        values["profession"] or None,
        values["structure"] or None,
    ), ""


@contextmanager
def _open_text(source: Path) -> Iterator[Iterator[str]]:
    """Lines of the extraction, read lazily; a ZIP must hold one .txt/.csv member."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith((".txt", ".csv"))]
            if len(members) != 1:
                raise MailboxError(f"expected one .txt member in the ZIP, found {len(members)}")
            with archive.open(members[0]) as raw:
                yield _lines(raw)
        return
    with open(source, "rb") as raw:
        yield _lines(raw)


def _lines(raw: IO[bytes]) -> Iterator[str]:
    """Decoded line by line, so that an encoding error names its line."""
    for number, line in enumerate(raw, start=1):
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            raise MailboxError(f"line {number}: not UTF-8") from None
