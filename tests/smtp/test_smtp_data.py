"""The chunked DATA reader against a line-by-line reading of RFC 5321 §4.1.1.4 and §4.5.2."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.smtp.data import DataProblem, read_data, unstuff

MAX_LINE = 1001


def reference(stream: bytes, max_bytes: int | None = None, max_line: int = MAX_LINE) -> tuple[bytes, DataProblem | None, bytes]:
    """(content, problem, what follows the end marker), reading a line at a time as aiosmtpd does."""
    lines, pos = [], 0
    while True:
        end = stream.index(b"\r\n", pos) + 2
        line = stream[pos:end]
        pos = end
        if line == b".\r\n":
            break
        lines.append(line)
    raw = b"".join(lines)
    if max_bytes is not None and len(raw) > max_bytes:
        return b"", DataProblem.TOO_MUCH, stream[pos:]
    if any(len(line) > max_line for line in raw.split(b"\n")):  # split at LF: bare LFs are refused later anyway
        return b"", DataProblem.LINE_TOO_LONG, stream[pos:]
    return b"".join(line[1:] if line.startswith(b".") else line for line in lines), None, stream[pos:]


def run(chunks: list[bytes], max_bytes: int | None = None, limit: int = 256 * 1024, max_line: int = MAX_LINE):
    async def go():
        reader = asyncio.StreamReader(limit=limit)
        for chunk in chunks:
            reader.feed_data(chunk)
        reader.feed_eof()
        read = await read_data(reader, max_bytes, max_line)
        return read.content, read.problem, await reader.read()

    return asyncio.run(go())


@pytest.mark.parametrize(
    "stream, content",
    [
        (b".\r\n", b""),
        (b"\r\n.\r\n", b"\r\n"),
        (b"a\r\n.\r\n", b"a\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b".a\r\n.b\r\n..\r\n.\r\n", b"a\r\nb\r\n.\r\n"),
        (b".\rX\r\n.\r\n", b"\rX\r\n"),
        (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n"),  # a dot after a bare LF is data
        (b"a\r.\r\n.\r\n", b"a\r.\r\n"),
        (b"a\r\n\r\n\r\n.\r\n", b"a\r\n\r\n\r\n"),
    ],
)
def test_end_marker_and_dot_stuffing(stream: bytes, content: bytes) -> None:
    assert run([stream + b"QUIT\r\n"]) == (content, None, b"QUIT\r\n")


def test_the_end_marker_split_at_every_position_is_found() -> None:
    stream = b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nRSET\r\n"
    for cut in range(1, len(stream)):
        assert run([stream[:cut], stream[cut:]]) == (b"Subject: x\r\n\r\n.dot\r\nbody\r\n", None, b"RSET\r\n")
    assert run([bytes([b]) for b in stream]) == (b"Subject: x\r\n\r\n.dot\r\nbody\r\n", None, b"RSET\r\n")


def test_reads_on_past_the_stream_limit() -> None:
    body = b"".join(b"line %d of a long message\r\n" % i for i in range(5000))
    assert run([body + b".\r\nQUIT\r\n"], limit=1001) == (body, None, b"QUIT\r\n")


def test_too_much_data_is_read_to_its_end_and_dropped() -> None:
    body = b"x" * 900 + b"\r\n"
    content, problem, rest = run([body * 50 + b".\r\nQUIT\r\n"], max_bytes=10_000, limit=1001)
    assert (content, problem, rest) == (b"", DataProblem.TOO_MUCH, b"QUIT\r\n")


def test_a_line_over_the_limit_is_refused_after_the_end() -> None:
    assert run([b"a\r\n" + b"y" * 1000 + b"\r\n.\r\nQUIT\r\n"]) == (b"", DataProblem.LINE_TOO_LONG, b"QUIT\r\n")
    # 999 bytes and CRLF: the longest line allowed with the 1001 limit (998 + CRLF + a stuffing dot).
    assert run([b"." + b"y" * 998 + b"\r\n.\r\n"]) == (b"y" * 998 + b"\r\n", None, b"")


def test_a_client_gone_inside_data_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        run([b"Subject: x\r\n\r\nno end"])


_pieces = st.sampled_from([b"a", b".", b"..", b"\r", b"\n", b"\r\n", b"\r\n.", b".\r\n", b"\n.\r\n", b"x" * 40])


@settings(max_examples=400, deadline=None)
@given(st.lists(_pieces, max_size=30), st.integers(min_value=1, max_value=40), st.sampled_from([None, 60]))
def test_same_as_reading_line_by_line(pieces: list[bytes], cut: int, max_bytes: int | None) -> None:
    stream = b"".join(pieces) + b"\r\n.\r\nNOOP\r\n"
    chunks = [stream[i : i + cut] for i in range(0, len(stream), cut)]
    assert run(chunks, max_bytes=max_bytes, limit=16, max_line=30) == reference(stream, max_bytes, max_line=30)


def test_unstuff_leaves_unstuffed_data_alone() -> None:
    data = b"no dots at line starts\r\nhere.\r\n"
    assert unstuff(data) is data
