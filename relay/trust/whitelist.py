"""The MSSanté domain whitelist (liste blanche), read incrementally and defensively.

Published files end without the closing `</ListeBlancheMSSante>` tag, so the
parser accepts a file whose last entry is complete and refuses one cut inside
an entry. DOCTYPE and entity declarations are refused before the XML parser
sees them: ElementTree would expand internal entities.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Protocol

from .dn import DnError, normalise_dn

NAMESPACE = "https://listeblanche.mssante.fr/schema"
_NS = "{" + NAMESPACE + "}"
_ROOT, _LIST, _ENTRY = _NS + "ListeBlancheMSSante", _NS + "ListeDomaines", _NS + "Domaine"
_FIELDS = ("Nom", "Description", "DNCertificatOperateur", "ResponsableContact", "SupportContact", "DateMAJ")
_FORBIDDEN = ("<!DOCTYPE", "<!ENTITY")
_CHUNK = 1 << 16
DOMAIN_NAME = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]")


class WhitelistError(ValueError):
    """A whitelist that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class WhitelistEntry:
    domain: str
    operator_dn: str  # normalised (relay.trust.dn)
    description: str
    updated: str
    line: int


@dataclass(frozen=True)
class Whitelist:
    generated: str
    entries: tuple[WhitelistEntry, ...]
    # Entries that cannot name a domain or an operator (published lists hold a
    # few); skipped, and reported as warnings.
    skipped: tuple[str, ...] = ()

    def operator_dns(self) -> dict[str, frozenset[str]]:
        """Allowed operator DNs per domain: a domain listed several times has several."""
        by_domain: dict[str, set[str]] = {}
        for entry in self.entries:
            by_domain.setdefault(entry.domain, set()).add(entry.operator_dn)
        return {domain: frozenset(dns) for domain, dns in by_domain.items()}


def check_sha256(digest: bytes, published: bytes) -> None:
    """`digest`: the file's SHA-256, taken while it was read; `published`: the ANS checksum file."""
    expected = published.decode("ascii", "replace").split()
    if not expected or not re.fullmatch(r"[0-9a-fA-F]{64}", expected[0]):
        raise WhitelistError("checksum file holds no SHA-256 hex digest")
    actual = digest.hex()
    if actual != expected[0].lower():
        raise WhitelistError(f"SHA-256 mismatch: file has {actual}, published {expected[0].lower()}")


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def parse_whitelist(stream: Readable) -> Whitelist:
    """Reads `stream` in chunks to its end: the file is never held whole."""
    return _Reader().read(stream)


class _Reader:
    def __init__(self) -> None:
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.stack: list[ET.Element] = []
        self.entry_line = 0
        self.line = 1
        self.entries: list[WhitelistEntry] = []
        self.skipped: list[str] = []
        self.generated = ""
        self.dn_cache: dict[str, str] = {}

    def read(self, stream: Readable) -> Whitelist:
        decoder = codecs.getincrementaldecoder("utf-8")()
        pending = tail = ""
        while chunk := stream.read(_CHUNK):
            text = self._decode(decoder, chunk)
            self._guard(tail + text)  # the tail catches a declaration split across chunks
            tail = text[-16:]
            pending = self._feed_lines(pending + text)
        self._feed(pending + self._decode(decoder, b"", final=True))
        self._finish()
        if not self.entries:
            raise WhitelistError("no usable Domaine entry")
        return Whitelist(self.generated, tuple(self.entries), tuple(self.skipped))

    def _feed_lines(self, text: str) -> str:
        """Feed the complete lines, one at a time so that events know their line; return the rest."""
        lines = text.split("\n")
        rest = lines.pop()
        for line in lines:
            self._feed(line + "\n")
        if len(rest) > _CHUNK:  # a file without line breaks: feed it anyway, memory stays bounded
            self._feed(rest)
            return ""
        return rest

    def _decode(self, decoder: codecs.IncrementalDecoder, chunk: bytes, final: bool = False) -> str:
        try:
            return decoder.decode(chunk, final)
        except UnicodeDecodeError as error:
            raise WhitelistError(f"line {self.line}: not UTF-8 ({error.reason})") from None

    def _guard(self, text: str) -> None:
        for token in _FORBIDDEN:
            if token in text:
                raise WhitelistError(f"{token[2:]} declarations are refused (entity expansion)")

    def _feed(self, text: str) -> None:
        try:
            self.parser.feed(text)
            events = list(self.parser.read_events())  # the pull parser reports errors here too
        except ET.ParseError as error:
            raise WhitelistError(f"line {error.position[0]}: malformed XML ({error})") from None
        for event, element in events:
            self._on(event, element)
        self.line += text.count("\n")

    def _on(self, event: str, element: ET.Element) -> None:
        if event == "start":
            if not self.stack and element.tag != _ROOT:
                raise WhitelistError(f"root element is {element.tag}, expected {_ROOT}")
            if element.tag == _ENTRY:
                self.entry_line = self.line
            self.stack.append(element)
            return
        self.stack.pop()
        if element.tag == _NS + "DateDeGeneration":
            self.generated = (element.text or "").strip()
        elif element.tag == _ENTRY:
            try:
                self.entries.append(self._entry(element))
            except WhitelistError as error:
                self.skipped.append(str(error))
            if self.stack:
                self.stack[-1].remove(element)  # constant memory: entries are kept as values only

    def _entry(self, element: ET.Element) -> WhitelistEntry:
        values = {name: (element.findtext(_NS + name) or "").strip() for name in _FIELDS}
        where = f"line {self.entry_line}"
        domain = values["Nom"].lower()
        if not DOMAIN_NAME.fullmatch(domain):
            raise WhitelistError(f"{where}: Nom {values['Nom']!r} is not a domain name")
        raw_dn = values["DNCertificatOperateur"]
        dn = self.dn_cache.get(raw_dn)
        if dn is None:
            try:
                dn = self.dn_cache[raw_dn] = normalise_dn(raw_dn)
            except DnError as error:
                raise WhitelistError(f"{where}: DNCertificatOperateur {raw_dn!r}: {error}") from None
        return WhitelistEntry(domain, dn, values["Description"], values["DateMAJ"], self.entry_line)

    def _finish(self) -> None:
        if any(element.tag == _ENTRY for element in self.stack):
            raise WhitelistError(f"file is cut inside the Domaine entry starting at line {self.entry_line}")
        if not self.stack:  # closed properly, or empty (read() refuses a list without entries)
            return
        # Published files stop after the last entry: close what is open, and
        # anything left half-written makes the parser fail here.
        closing = "".join(f"</{el.tag.rpartition('}')[2]}>" for el in reversed(self.stack))
        try:
            self.parser.feed(closing)
            self.parser.close()
        except ET.ParseError as error:
            raise WhitelistError(f"file is cut after the last complete entry ({error})") from None
