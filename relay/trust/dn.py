"""Distinguished names compared as parsed RDN sequences.

Operator DNs arrive as text from the MSSanté whitelist and from
administrators (`CN=a, OU=b`, `cn=a,ou=b`, ...) and as certificate subjects
from TLS peers; all become one canonical string so that a set lookup
compares them: attribute types by OID, values case- and space-insensitively,
multi-valued RDNs order-free.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import NameOID

_TYPES: dict[str, str] = {
    "cn": NameOID.COMMON_NAME.dotted_string,
    "commonname": NameOID.COMMON_NAME.dotted_string,
    "sn": NameOID.SURNAME.dotted_string,
    "surname": NameOID.SURNAME.dotted_string,
    "gn": NameOID.GIVEN_NAME.dotted_string,
    "givenname": NameOID.GIVEN_NAME.dotted_string,
    "t": NameOID.TITLE.dotted_string,
    "title": NameOID.TITLE.dotted_string,
    "ou": NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string,
    "o": NameOID.ORGANIZATION_NAME.dotted_string,
    "l": NameOID.LOCALITY_NAME.dotted_string,
    "st": NameOID.STATE_OR_PROVINCE_NAME.dotted_string,
    "s": NameOID.STATE_OR_PROVINCE_NAME.dotted_string,
    "c": NameOID.COUNTRY_NAME.dotted_string,
    "street": NameOID.STREET_ADDRESS.dotted_string,
    "dc": NameOID.DOMAIN_COMPONENT.dotted_string,
    "uid": NameOID.USER_ID.dotted_string,
    "serialnumber": NameOID.SERIAL_NUMBER.dotted_string,
    "emailaddress": NameOID.EMAIL_ADDRESS.dotted_string,
    "e": NameOID.EMAIL_ADDRESS.dotted_string,
    "organizationidentifier": NameOID.ORGANIZATION_IDENTIFIER.dotted_string,
}
# Preferred short names for the canonical text (readable in `relay route`).
_SHORT: dict[str, str] = {}
for _name, _oid in _TYPES.items():
    _SHORT.setdefault(_oid, _name.upper() if len(_name) <= 2 else _name)
_SHORT[NameOID.STATE_OR_PROVINCE_NAME.dotted_string] = "ST"
_SHORT[NameOID.TITLE.dotted_string] = "T"
_OID = re.compile(r"(?:oid\.)?(\d+(?:\.\d+)+)", re.IGNORECASE)


class DnError(ValueError):
    """Text that is not a distinguished name."""


def normalise_dn(text: str) -> str:
    """Canonical form of an RFC 4514 DN (most specific RDN first, as written)."""
    rdns = [_canonical_rdn(rdn) for rdn in _split(text.strip(), ",")]
    if not rdns:
        raise DnError("empty DN")
    return ",".join(rdns)


def normalise_name(name: x509.Name) -> str:
    """Canonical form of a certificate's subject or issuer, comparable with normalise_dn."""
    return ",".join(
        "+".join(sorted(f"{_SHORT.get(a.oid.dotted_string, a.oid.dotted_string)}={_fold(str(a.value))}" for a in rdn))
        for rdn in reversed(name.rdns)  # RFC 4514 writes the last RDN first
    )


def _canonical_rdn(text: str) -> str:
    return "+".join(sorted(_canonical_attribute(part) for part in _split(text, "+")))


def _canonical_attribute(text: str) -> str:
    kind, sep, value = text.partition("=")
    if not sep:
        raise DnError(f"{text.strip()!r} is not TYPE=value")
    kind = kind.strip()
    oid = _TYPES.get(kind.lower())
    if oid is None:
        match = _OID.fullmatch(kind)
        if not match:
            raise DnError(f"unknown attribute type {kind!r}")
        oid = match.group(1)
    return f"{_SHORT.get(oid, oid)}={_fold(_unescape(value.strip()))}"


def _fold(value: str) -> str:
    return " ".join(value.split()).casefold()


def _split(text: str, separator: str) -> list[str]:
    """Split on separators not escaped by a backslash nor inside double quotes."""
    parts, current, escaped, quoted = [], [], False, False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            current.append(char)
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped or quoted:
        raise DnError("unterminated escape or quote")
    parts.append("".join(current))
    if any(not p.strip() for p in parts):
        raise DnError(f"empty component in {text!r}")
    return parts


def _unescape(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    out, i = [], 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
                out.append(chr(int(pair, 16)))  # hex pairs: bytes of UTF-8; ASCII covers real DNs
                i += 3
                continue
            out.append(value[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)
