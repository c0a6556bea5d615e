"""Mailboxes and address lists, parsed to the letter of RFC 5322 §3.4.

Accepted: display names made of atoms and quoted strings (RFC 2047 encoded
words decoded in atoms, the obs-phrase "." tolerated because names like
"Dr. Martin" are everyday mail and a display name never identifies anyone),
angle-addr, bare addr-spec, comments anywhere CFWS is allowed, dot-atom or
quoted local parts, dot-atom domains and domain literals. Groups only in
address lists. Everything else, obsolete forms included, is MALFORMED: an
unquoted "@" in a display name (``admin@hospital.fr <attacker@evil.fr>``) is
not a phrase, so that trick never yields a mailbox. Addresses themselves are
US-ASCII; UTF-8 (RFC 6532) is allowed only in display names.
"""

from __future__ import annotations

import binascii
import codecs
import re
from dataclasses import dataclass

from .errors import Rejection
from .reasons import Reason
from .tokens import ADDRESS, Kind, Token, lex


@dataclass(frozen=True, slots=True)
class Mailbox:
    local_part: str  # dot-atom, or a quoted-string when it is not a dot-atom
    domain: str  # dot-atom or [domain-literal], as written
    display_name: str | None = None

    @property
    def address(self) -> str:
        """local@domain with the domain lower-cased (local parts are case-sensitive)."""
        return f"{self.local_part}@{self.domain.lower()}"

    def same_address(self, other: Mailbox) -> bool:
        """Whether both name the same mailbox; display names do not count."""
        return self.address == other.address


# RFC 5322 §3.2.3 atext, one or more: shared by every reader of addresses.
ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
DOT_ATOM = rf"{ATEXT}(?:\.{ATEXT})*"  # RFC 5322 §3.2.3, as a pattern to build others from
_WHOLE_DOT_ATOM = re.compile(rf"{DOT_ATOM}\Z")
_ENCODED_WORD = re.compile(r"=\?([^?*\s]+)(?:\*[^?\s]+)?\?([bBqQ])\?([^?\s]*)\?=\Z")
_QP_HEX = re.compile(r"=([0-9A-Fa-f]{2})")

_LT: Token = (Kind.SPECIAL, "<")
_GT: Token = (Kind.SPECIAL, ">")
_AT: Token = (Kind.SPECIAL, "@")
_COMMA: Token = (Kind.SPECIAL, ",")
_COLON: Token = (Kind.SPECIAL, ":")
_SEMICOLON: Token = (Kind.SPECIAL, ";")


def parse_mailbox(value: str) -> Mailbox:
    """Exactly one mailbox (the From of a signed message); anything else is MALFORMED."""
    tokens = lex(value, ADDRESS)
    if not tokens:
        raise Rejection(Reason.MALFORMED, "empty address where one mailbox is required")
    if _COLON in tokens or _SEMICOLON in tokens:
        raise Rejection(Reason.MALFORMED, "a group where one mailbox is required")
    if _COMMA in tokens:
        raise Rejection(Reason.MALFORMED, "several addresses where one mailbox is required")
    return _mailbox(tokens)


def parse_address_list(value: str) -> tuple[Mailbox, ...]:
    """The mailboxes of an address-list (To, Cc): groups are flattened, empty groups allowed."""
    tokens = lex(value, ADDRESS)
    if not tokens:
        raise Rejection(Reason.MALFORMED, "empty address list")
    mailboxes: list[Mailbox] = []
    for address in _split_list(tokens):
        mailboxes.extend(_address(address))
    return tuple(mailboxes)


def _split_list(tokens: list[Token]) -> list[list[Token]]:
    """Cut at the commas that separate addresses, keeping each group whole."""
    addresses: list[list[Token]] = [[]]
    in_group = False
    for token in tokens:
        if token == _COMMA and not in_group:
            addresses.append([])
            continue
        if token == _COLON:
            if in_group:
                raise Rejection(Reason.MALFORMED, "nested group in address list")
            in_group = True
        elif token == _SEMICOLON:
            if not in_group:
                raise Rejection(Reason.MALFORMED, "';' outside a group in address list")
            in_group = False
        addresses[-1].append(token)
    if in_group:
        raise Rejection(Reason.MALFORMED, "unterminated group in address list")
    if any(not address for address in addresses):
        raise Rejection(Reason.MALFORMED, "empty element in address list")
    return addresses


def _address(tokens: list[Token]) -> list[Mailbox]:
    if _COLON not in tokens:
        return [_mailbox(tokens)]
    colon = tokens.index(_COLON)
    if tokens[-1] != _SEMICOLON:
        raise Rejection(Reason.MALFORMED, "text after the end of a group")
    if not colon:
        raise Rejection(Reason.MALFORMED, "group without a display name")
    _display_name(tokens[:colon])
    members = tokens[colon + 1 : -1]
    if not members:
        return []
    segments: list[list[Token]] = [[]]
    for token in members:
        if token == _COMMA:
            segments.append([])
        else:
            segments[-1].append(token)
    if any(not segment for segment in segments):
        raise Rejection(Reason.MALFORMED, "empty element in group")
    return [_mailbox(segment) for segment in segments]


def _mailbox(tokens: list[Token]) -> Mailbox:
    if _LT not in tokens:
        local, domain = _addr_spec(tokens)
        return Mailbox(local, domain)
    opening = tokens.index(_LT)
    if tokens[-1] != _GT or tokens.count(_LT) != 1 or tokens.count(_GT) != 1:
        raise Rejection(Reason.MALFORMED, "text around the angle-addr of a mailbox")
    local, domain = _addr_spec(tokens[opening + 1 : -1])
    name = _display_name(tokens[:opening]) if opening else None
    return Mailbox(local, domain, name)


def _addr_spec(tokens: list[Token]) -> tuple[str, str]:
    if len(tokens) != 3 or tokens[1] != _AT:
        raise Rejection(Reason.MALFORMED, "not an addr-spec (local-part@domain)")
    return _local_part(tokens[0]), _domain(tokens[2])


def _local_part(token: Token) -> str:
    kind, text = token
    if kind is Kind.WORD and _WHOLE_DOT_ATOM.match(text):
        return text
    if kind is Kind.QUOTED and text.isascii() and text.isprintable():
        # One spelling per mailbox: "john"@x and john@x are the same address.
        if _WHOLE_DOT_ATOM.match(text):
            return text
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise Rejection(Reason.MALFORMED, "invalid local part")


def _domain(token: Token) -> str:
    kind, text = token
    if kind is Kind.WORD and _WHOLE_DOT_ATOM.match(text):
        return text
    if kind is Kind.LITERAL:
        return text
    raise Rejection(Reason.MALFORMED, "invalid domain")


def _display_name(tokens: list[Token]) -> str:
    """phrase = 1*word; adjacent encoded words join without the space between them."""
    parts: list[str] = []
    previous_encoded = False
    for kind, text in tokens:
        if kind is Kind.QUOTED:
            parts.append(" " + text)
            previous_encoded = False
        elif kind is Kind.WORD:
            decoded = _decode_encoded_word(text)
            if decoded is None:
                parts.append(" " + text)
            else:
                parts.append(decoded if previous_encoded else " " + decoded)
            previous_encoded = decoded is not None
        elif kind is Kind.SPECIAL:
            raise Rejection(Reason.MALFORMED, f"display name is not a phrase (unquoted {text!r})")
        else:
            raise Rejection(Reason.MALFORMED, "display name is not a phrase (a domain literal)")
    return "".join(parts)[1:]


def _decode_encoded_word(word: str) -> str | None:
    """RFC 2047 encoded-word, or None when the atom is not one."""
    match = _ENCODED_WORD.match(word)
    if match is None:
        return None
    charset, encoding, text = match.groups()
    try:
        codecs.lookup(charset)
        if encoding in "bB":
            data = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
        else:
            data = _QP_HEX.sub(lambda m: chr(int(m.group(1), 16)), text.replace("_", " ")).encode("latin-1")
        return data.decode(charset)
    except (LookupError, ValueError, UnicodeError):
        raise Rejection(Reason.MALFORMED, "undecodable encoded-word in display name") from None
