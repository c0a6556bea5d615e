"""The reply reader: bytes in any pieces to whole SMTP replies (RFC 5321 4.2)."""

from __future__ import annotations

import pytest

from relay.queue.reply_reader import MAX_LINE, MAX_LINES, Reply, ReplyFormatError, ReplyReader

EHLO = b"250-sink.test greets relay.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
PIPELINED = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 unknown\r\n354 End data with <CR><LF>.<CR><LF>\r\n"


def _replies(*pieces: bytes) -> list[Reply]:
    reader = ReplyReader()
    found = [reply for piece in pieces for reply in reader.feed(piece)]
    assert reader.idle
    return found


def test_a_multi_line_reply_is_one_reply():
    [reply] = _replies(EHLO)
    assert reply.code == 250
    assert reply.lines == ("sink.test greets relay.test", "PIPELINING", "SIZE 10240000", "8BITMIME")


def test_pipelined_replies_in_one_segment_are_all_read():
    replies = _replies(PIPELINED)
    assert [r.code for r in replies] == [250, 250, 550, 354]
    assert replies[2].summary() == "550 5.1.1 unknown"


@pytest.mark.parametrize("data", [EHLO, PIPELINED, EHLO + PIPELINED])
def test_any_cut_of_the_bytes_gives_the_same_replies(data):
    whole = _replies(data)
    for cut in range(1, len(data)):
        assert _replies(data[:cut], data[cut:]) == whole
    assert _replies(*(data[i : i + 1] for i in range(len(data)))) == whole


def test_an_unfinished_reply_waits_for_its_last_line():
    reader = ReplyReader()
    assert reader.feed(b"250-first\r\n250-second\r\n") == []
    assert not reader.idle
    assert reader.feed(b"250 last\r\n") == [Reply(250, ("first", "second", "last"))]
    assert reader.idle


@pytest.mark.parametrize(
    "line, reply",
    [
        (b"250\r\n", Reply(250, ("",))),
        (b"250 \r\n", Reply(250, ("",))),
        (b"221 2.0.0 Bye\n", Reply(221, ("2.0.0 Bye",))),  # LF alone, as some servers end lines
        (b"554 5.7.1  spaced \t text \r\n", Reply(554, ("5.7.1  spaced \t text ",))),
    ],
)
def test_line_forms(line, reply):
    assert _replies(line) == [reply]


def test_summary_is_one_bounded_line():
    reply = _replies(b"550-5.7.1 first\r\n550 5.7.1   second\r\n")[0]
    assert reply.summary() == "550 5.7.1 first 5.7.1 second"
    assert len(Reply(550, ("x" * 1000,)).summary()) == 400
    assert Reply(250, ("",)).summary() == "250"


@pytest.mark.parametrize(
    "data, why",
    [
        (b"hello\r\n", "not an SMTP reply line"),
        (b"25 short\r\n", "not an SMTP reply line"),
        (b"650 out of range\r\n", "not an SMTP reply line"),
        (b"250_ok\r\n", "not an SMTP reply line"),
        (b"250 bare\rcarriage return\r\n", "not an SMTP reply line"),
        (b"250-one\r\n550 two\r\n", "reply code changed"),
        (b"250 " + b"x" * MAX_LINE + b"\r\n", "longer than"),
        (b"250-x\r\n" * MAX_LINES + b"250 x\r\n", "more than"),
    ],
)
def test_what_is_not_a_reply_is_refused(data, why):
    with pytest.raises(ReplyFormatError, match=why):
        ReplyReader().feed(data)


def test_a_line_without_end_is_refused_once_too_long():
    reader = ReplyReader()
    reader.feed(b"250 " + b"x" * (MAX_LINE - 10))
    with pytest.raises(ReplyFormatError, match="longer than"):
        reader.feed(b"x" * 20)


def test_replies_completed_before_junk_are_kept_in_the_error():
    with pytest.raises(ReplyFormatError) as refused:
        ReplyReader().feed(b"250 2.0.0 queued\r\n354 go\r\nthis is not SMTP\r\n")
    assert [r.code for r in refused.value.replies] == [250, 354]


@pytest.mark.parametrize("code, kind", [(250, 2), (252, 2), (354, 3), (421, 4), (554, 5)])
def test_the_class_of_a_reply_is_its_first_digit(code, kind):
    assert Reply(code, ("",)).kind == kind
