"""Lexing of structured header field bodies (RFC 5322 §3.2, RFC 2045 §5.1).

Both grammars share quoted strings, comments and white space; they differ in
which characters make a word (atext plus "." for addresses, the MIME token
set for Content-Type) and which characters are specials. Anything outside
the chosen grammar is refused rather than skipped: a lenient lexer is how two
parsers come to disagree about one header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .errors import Rejection
from .reasons import Reason


class Kind(Enum):
    WORD = "word"  # atom / dot-atom text, or a MIME token
    QUOTED = "quoted"  # quoted-string, quoted-pairs resolved
    LITERAL = "literal"  # domain-literal, brackets included, white space removed
    SPECIAL = "special"  # one special character


Token = tuple[Kind, str]


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    word: re.Pattern[str]
    specials: frozenset[str]
    literals: bool


# atext (RFC 5322 §3.2.3) plus "." so that a dot-atom is one token; words with
# other dots (obs-phrase, a "."-leading atom) are sorted out by the parser.
# Non-ASCII is UTF-8 text (RFC 6532); the address parser confines it to
# display names.
ADDRESS = Dialect(
    "address",
    re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\U0010ffff]+"),
    frozenset("<>:;@,"),
    literals=True,
)

# RFC 2045 token: printable US-ASCII except SPACE and tspecials.
MIME = Dialect(
    "MIME",
    re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"),
    frozenset("/;="),
    literals=False,
)

_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\u0080-\U0010ffff])*)"')
_LITERAL = re.compile(r"\[([\t !-Z^-~]*)\]")  # dtext (%d33-90 / %d94-126) and FWS
_PAIR = re.compile(r"\\(.)", re.S)
_WSP = frozenset(" \t")


def lex(value: str, dialect: Dialect) -> list[Token]:
    """The tokens of one unfolded field body, comments and white space dropped."""
    tokens: list[Token] = []
    pos, end = 0, len(value)
    while pos < end:
        char = value[pos]
        if char in _WSP:
            pos += 1
        elif char == "(":
            pos = _skip_comment(value, pos, dialect)
        elif char == '"':
            pos = _quoted(value, pos, dialect, tokens)
        elif char == "[" and dialect.literals:
            pos = _literal(value, pos, dialect, tokens)
        elif char in dialect.specials:
            tokens.append((Kind.SPECIAL, char))
            pos += 1
        else:
            match = dialect.word.match(value, pos)
            if match is None:
                raise Rejection(Reason.MALFORMED, f"character {char!r} not allowed in {dialect.name} syntax")
            tokens.append((Kind.WORD, match.group()))
            pos = match.end()
    return tokens


def _quoted(value: str, pos: int, dialect: Dialect, tokens: list[Token]) -> int:
    match = _QUOTED.match(value, pos)
    if match is None:
        raise Rejection(Reason.MALFORMED, f"unterminated or invalid quoted-string in {dialect.name} syntax")
    tokens.append((Kind.QUOTED, _PAIR.sub(r"\1", match.group(1))))
    return match.end()


def _literal(value: str, pos: int, dialect: Dialect, tokens: list[Token]) -> int:
    match = _LITERAL.match(value, pos)
    if match is None:
        raise Rejection(Reason.MALFORMED, f"invalid domain-literal in {dialect.name} syntax")
    tokens.append((Kind.LITERAL, "[" + "".join(match.group(1).split()) + "]"))
    return match.end()


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
