"""Lexing of structured header field bodies (RFC 5322 §3.2, RFC 2045 §5.1).

Both grammars share quoted strings, comments and white space; they differ in
which characters make a word (atext plus "." for addresses, the MIME token
set for Content-Type) and which characters are specials. Anything outside
the chosen grammar is refused rather than skipped: a lenient lexer is how two
parsers come to disagree about one header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from .errors import Rejection
from .reasons import Reason


class Kind(Enum):
    WORD = "word"  # atom / dot-atom text, or a MIME token
    QUOTED = "quoted"  # quoted-string, quoted-pairs resolved
    LITERAL = "literal"  # domain-literal, brackets included, white space removed
    SPECIAL = "special"  # one special character


Token = tuple[Kind, str]

# The inside of a quoted-string: qtext, white space and quoted-pairs. Written
# as runs of plain characters between quoted-pairs (the same language as
# "(?:plain|pair)*"), so that the engine takes each run in one step instead
# of entering a group per character.
_QTEXT = r'[^"\\\x00-\x08\x0a-\x1f\x7f]'
QUOTED_TEXT = rf'{_QTEXT}*(?:\\[\t\x20-\x7e\u0080-\U0010ffff]{_QTEXT}*)*'
# RFC 2045 token: printable US-ASCII except SPACE and tspecials.
MIME_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    word: str  # regular expression of one word
    specials: str  # the special characters, one token each
    literals: bool  # whether [domain-literal] is a token
    scanner: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One match per token, leading white space included: the lexer's
        # inner loop stays in C for everything but comments.
        literal = r"|\[([\t !-Z^-~]*)\]" if self.literals else ""  # dtext (%d33-90 / %d94-126) and FWS
        quoted = f'"({QUOTED_TEXT})"'
        pattern = rf"[ \t]*(?:({self.word})|{quoted}|([{re.escape(self.specials)}]){literal}|(?=\()|\Z)"
        object.__setattr__(self, "scanner", re.compile(pattern))


# atext (RFC 5322 §3.2.3) plus "." so that a dot-atom is one token; words with
# other dots (obs-phrase, a "."-leading atom) are sorted out by the parser.
# Non-ASCII is UTF-8 text (RFC 6532); the address parser confines it to
# display names.
ADDRESS = Dialect("address", r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\U0010ffff]+", "<>:;@,", literals=True)

MIME = Dialect("MIME", MIME_TOKEN, "/;=", literals=False)

_PAIR = re.compile(r"\\(.)", re.S)
_KINDS = (Kind.WORD, Kind.QUOTED, Kind.SPECIAL, Kind.LITERAL)


def lex(value: str, dialect: Dialect) -> list[Token]:
    """The tokens of one unfolded field body, comments and white space dropped."""
    tokens: list[Token] = []
    scan = dialect.scanner.match
    pos, end = 0, len(value)
    while pos < end:
        match = scan(value, pos)
        if match is None:
            raise Rejection(Reason.MALFORMED, f"character {value[pos:].lstrip()[:1]!r} not allowed in {dialect.name} syntax")
        group = match.lastindex
        if group is None:  # a comment starts here, or only white space was left
            pos = match.end()
            if pos < end:
                pos = _skip_comment(value, pos, dialect)
            continue
        text = match.group(group)
        if group == 2:
            text = unquote(text)
        elif group == 4:
            text = "[" + "".join(text.split()) + "]"
        tokens.append((_KINDS[group - 1], text))
        pos = match.end()
    return tokens


def unquote(text: str) -> str:
    """The value of a quoted-string's inside: quoted-pairs resolved."""
    return _PAIR.sub(r"\1", text) if "\\" in text else text


def _skip_comment(value: str, pos: int, dialect: Dialect) -> int:
    """Skip one (possibly nested) comment; comments are rare, so a plain loop will do."""
    depth, end = 0, len(value)
    while pos < end:
        char = value[pos]
        if char == "\\":
            pos += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return pos + 1
        elif char < " " and char != "\t" or char == "\x7f":
            break
        pos += 1
    raise Rejection(Reason.MALFORMED, f"unterminated or invalid comment in {dialect.name} syntax")
