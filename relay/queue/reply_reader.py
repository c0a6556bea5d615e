"""SMTP replies as a next hop sends them: bytes in, whole replies out (RFC 5321 4.2).

Pure: no I/O. The delivery client feeds it what the socket gives, in
whatever pieces, and gets back every reply completed by those bytes, so
replies to pipelined commands (RFC 2920) that arrive in one segment are all
seen at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 5321 4.5.3.1.5 allows 512 octets per reply line; servers exceed it in
# EHLO and error texts, so a margin, but a bounded one.
MAX_LINE = 4096
MAX_LINES = 128

_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])([^\r\n]*))?\r?\n")


class ReplyFormatError(ValueError):
    """What the next hop sent is not an SMTP reply. `replies` holds those completed before
    it in the same bytes: a reply stands even when junk follows it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.replies: list[Reply] = []  # set by ReplyReader.feed


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[str, ...]  # text after the code, one entry per line

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.lines).split())

    def summary(self, limit: int = 400) -> str:
        """`code text` on one line, for audit records and DSNs."""
        return f"{self.code} {self.text}".rstrip()[:limit]

    @property
    def kind(self) -> int:
        """The first digit: 2 positive, 3 intermediate, 4 transient, 5 permanent (RFC 5321 4.2.1)."""
        return self.code // 100


class ReplyReader:
    """Accumulates bytes and cuts them into replies; a multi-line reply ends at the
    line whose code is followed by a space (or nothing)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._code: bytes | None = None
        self._lines: list[str] = []

    @property
    def idle(self) -> bool:
        """Nothing is buffered: no partial line, no partial reply."""
        return not self._buffer and self._code is None

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies = []
        start = 0
        try:
            while True:
                end = self._buffer.find(b"\n", start)
                if end < 0:
                    break
                reply = self._line(bytes(self._buffer[start : end + 1]))
                start = end + 1
                if reply is not None:
                    replies.append(reply)
            del self._buffer[:start]
            if len(self._buffer) > MAX_LINE:
                raise ReplyFormatError(f"reply line longer than {MAX_LINE} octets")
        except ReplyFormatError as error:
            error.replies = replies
            raise
        return replies

    def _line(self, line: bytes) -> Reply | None:
        if len(line) > MAX_LINE:
            raise ReplyFormatError(f"reply line longer than {MAX_LINE} octets")
        match = _LINE.fullmatch(line)
        if match is None:
            raise ReplyFormatError(f"not an SMTP reply line: {line[:80]!r}")
        code, separator, text = match.groups()
        if self._code is not None and code != self._code:
            raise ReplyFormatError(f"reply code changed within a reply: {self._code.decode()} then {code.decode()}")
        self._code = code
        self._lines.append((text or b"").decode("utf-8", "replace"))
        if len(self._lines) > MAX_LINES:
            raise ReplyFormatError(f"reply of more than {MAX_LINES} lines")
        if separator == b"-":
            return None
        reply = Reply(int(code), tuple(self._lines))
        self._code, self._lines = None, []
        return reply
