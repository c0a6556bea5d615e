"""DKIM key records written down rather than looked up: zone-file style lines.

One record a line, as an operator would copy it from a zone or from
`relay keys dkim-record`:

    rsa2026._domainkey.hopital-test.mssante.fr. IN TXT "v=DKIM1; k=rsa; " "p=MIIB..."

The class (IN) and the trailing dot are optional; several quoted strings are
joined as the DNS joins them (RFC 7208 §3.3 style); `;` or `#` starts a
comment line. Used for the static resolver of a closed trust space.
"""

from __future__ import annotations

import re

_LINE = re.compile(r"^(?P<name>\S+)\s+(?:IN\s+)?TXT\s+(?P<value>.+)$", re.IGNORECASE)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_RECORD_NAME = re.compile(r"[A-Za-z0-9_.-]+\._domainkey\.[A-Za-z0-9.-]+")


def record_name(name: str) -> str:
    """The key name as the resolver looks it up (no trailing dot, lower case); ValueError if it is none."""
    normal = name.rstrip(".").lower()
    if not _RECORD_NAME.fullmatch(normal):
        raise ValueError(f"{name!r} is not `selector._domainkey.domain`")
    return normal


def parse_txt_records(text: str) -> dict[str, str]:
    """{"selector._domainkey.domain": "v=DKIM1; ..."}; ValueError naming the line when one is wrong."""
    records: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        match = _LINE.match(line)
        try:
            name = record_name(match.group("name") if match else "")
        except ValueError:
            raise ValueError(f"line {number}: not `selector._domainkey.domain TXT \"...\"`") from None
        value = "".join(part.replace('\\"', '"') for part in _QUOTED.findall(match.group("value")))
        if not value:
            raise ValueError(f"line {number}: the TXT value must be quoted")
        if name in records:
            raise ValueError(f"line {number}: {name} is given twice")
        records[name] = value
    return records
