"""Reading the DATA stream in large chunks instead of line by line.

aiosmtpd reads DATA one line per await (hundreds per message), which was
most of the relay's CPU time per message. This reader asks the stream for
everything up to the end marker at once and checks sizes, line lengths and
dot-stuffing over the whole bytes at C speed.

The end of data is CRLF "." CRLF (RFC 5321 §4.1.1.4), recognised exactly as
aiosmtpd recognises it: a line holding a single dot after a line ended by
CRLF. A dot after a bare LF is data, like any other bare line ending, and
the end-of-DATA checks refuse it (SMTP smuggling).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum

from ..core.linebreaks import lines_fit

END = b"\r\n.\r\n"
# Searched for instead of END: a line start ("\r" already read) must be seen
# by the search, and the byte before it is checked to be the CR.
_TAIL = b"\n.\r\n"
# How much one read may gather before handing over: bounds the stream's
# buffer (flow control pauses the socket at twice this) on big messages.
CHUNK = 256 * 1024


class DataProblem(Enum):
    TOO_MUCH = "too much data"
    LINE_TOO_LONG = "line too long"


@dataclass(frozen=True, slots=True)
class DataRead:
    """The message (dot-stuffing removed), or why it was read to its end and dropped."""

    content: bytes
    problem: DataProblem | None = None


class _Collector:
    """The bytes read so far, dropped (all but the tail) once over the size limit."""

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.size = 0
        self.tail = b""  # the last bytes read, to recognise END across reads
        self.too_much = False

    def take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.tail = (self.tail + chunk[-len(END) :])[-len(END) :]
        if self.too_much:
            return
        # The final "." CRLF is not content: a message of exactly max_bytes may come with it.
        if self.max_bytes is not None and self.size > self.max_bytes + len(END):
            self.too_much, self.parts = True, []  # never hold more than the limit
            return
        self.parts.append(chunk)

    def ended(self) -> bool:
        """Whether the last read ended with the end marker; if so, its "." CRLF is dropped."""
        if self.tail != END:
            return False
        if self.parts:
            self.parts[-1] = self.parts[-1][:-3]  # the read that found it ends with it
        return True


async def read_data(reader: asyncio.StreamReader, max_bytes: int | None, max_line: int) -> DataRead:
    """Everything up to the end marker. `max_line` counts a line with its CRLF and any stuffing dot.

    Raises asyncio.IncompleteReadError when the client goes away first.
    """
    collected = _Collector(max_bytes)
    line_start = True  # what was read so far ends with CRLF (or nothing was read)
    while True:
        if line_start:
            # A line start may be the final ".": read up to its CR to see.
            head = await _until(reader, b"\r", collected)
            if head is None:
                line_start = False
                continue
            if head == b".\r":
                after = await reader.readexactly(1)
                if after == b"\n":
                    break  # a lone dot: the end (nothing of it is content)
                head += after
            collected.take(head)
            line_start = False
            continue
        chunk = await _until(reader, _TAIL, collected)
        if chunk is None:
            continue
        collected.take(chunk)
        if collected.ended():
            break
        line_start = True  # "\n.\r\n" after a bare LF: data, and now a new line starts
    raw = b"".join(collected.parts)
    if collected.too_much or (max_bytes is not None and len(raw) > max_bytes):
        return DataRead(b"", DataProblem.TOO_MUCH)
    if not lines_fit(raw, max_line):
        return DataRead(b"", DataProblem.LINE_TOO_LONG)
    return DataRead(unstuff(raw))


async def _until(reader: asyncio.StreamReader, separator: bytes, collected: _Collector) -> bytes | None:
    """Up to and including `separator`; or None after taking a chunk that does not hold it."""
    try:
        return await reader.readuntil(separator)
    except asyncio.LimitOverrunError as error:
        # Not within the limit: take what was searched (the stream keeps the
        # few bytes that could begin the separator) and search on.
        collected.take(await reader.read(error.consumed))
        return None


def unstuff(raw: bytes) -> bytes:
    """RFC 5321 §4.5.2: a line that begins with a dot loses that dot."""
    if not raw.startswith(b".") and b"\r\n." not in raw:
        return raw
    return (b"\r\n" + raw).replace(b"\r\n.", b"\r\n")[2:]
