"""Delivery's SMTP client against scripted next hops on loopback: pipelining, refusals,
replies out of turn, STARTTLS injection, greetings, timeouts, sessions closed while idle."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives import serialization

from relay.core.bundle import Bundle
from relay.core.snapshot import NextHop, TlsMode
from relay.queue.delivery import REUSE_TIME_LIMIT, Destinations, Pooled, _transaction
from relay.queue.smtp_client import ReplyTimeout, Session, SessionError, StaleSession, UnexpectedReply, command, wire_data

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
EHLO_PIPELINING = b"250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-sink.test\r\n250 8BITMIME\r\n"
MESSAGE = b"Subject: test\r\n\r\n.leading dot\r\nbody\r\n"


def _run(script: Script, client: Callable[[int], Awaitable[object]], connections: int = 1, tls: ssl.SSLContext | None = None) -> object:
    """Serve `script` to each of `connections` on a loopback port, run `client` against it;
    the script's own assertions fail the test (their exceptions are re-raised here)."""

    async def main() -> object:
        failures: list[BaseException] = []
        served = asyncio.Semaphore(0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await script(reader, writer)
            except BaseException as error:  # noqa: BLE001 - reported to the test
                failures.append(error)
            finally:
                writer.close()
                served.release()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)  # tls: implicit TLS
        async with server:
            result = await client(server.sockets[0].getsockname()[1])
            for _ in range(connections):
                await asyncio.wait_for(served.acquire(), 10)
        if failures:
            raise failures[0]
        return result

    return asyncio.run(main())


async def _open(port: int, timeout: float = 5.0, **tls: object) -> Session:
    return await Session.open("127.0.0.1", port, helo_name="relay.test", connect_timeout=5, command_timeout=timeout, **tls)


async def _greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ehlo: bytes = EHLO_PIPELINING) -> None:
    writer.write(b"220 sink.test ESMTP\r\n")
    await _expect(reader, writer, b"EHLO relay.test\r\n", ehlo)


async def _expect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes, reply: bytes) -> None:
    """The next command must be `line`; it is answered with `reply`."""
    assert await reader.readline() == line
    writer.write(reply)


async def _greeted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A next hop that greets, answers EHLO, then waits for the client to close."""
    await _greet(reader, writer)
    assert await reader.read() == b""


async def _pipelined(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replies: bytes) -> None:
    """Greet, then read the pipelined group, MAIL, each RCPT and DATA (a command per reply
    line), before answering it at once."""
    await _greet(reader, writer)
    group = await _lines(reader, replies.count(b"\n"))
    assert group[0].startswith(b"MAIL FROM:<") and group[-1] == b"DATA\r\n"
    assert all(line.startswith(b"RCPT TO:<") for line in group[1:-1])
    writer.write(replies)


async def _lines(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    return [await reader.readline() for _ in range(count)]


async def _message(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n.\r\n")


async def _deliver_then_quit(port: int, recipients: list[str]) -> tuple[dict, bool]:
    session = await _open(port)
    outcome = await _transaction(session, "alice@hospital.test", recipients, MESSAGE, reused=False)
    assert outcome is not None
    connected = session.is_connected
    if connected:
        await session.quit()
    return outcome[0], connected


def test_with_pipelining_mail_rcpt_and_data_leave_before_any_reply():
    async def script(reader, writer):
        await _greet(reader, writer)
        # No reply before all three commands are in: a client waiting for the reply
        # to MAIL would stall here until its timeout.
        assert await _lines(reader, 4) == [
            b"MAIL FROM:<alice@hospital.test>\r\n",
            b"RCPT TO:<bob@hospital.test>\r\n",
            b"RCPT TO:<carol@hospital.test>\r\n",
            b"DATA\r\n",
        ]
        writer.write(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250-2.1.5 Ok\r\n250 2.1.5 still Ok\r\n354 go ahead\r\n")
        assert await _message(reader) == b"Subject: test\r\n\r\n..leading dot\r\nbody\r\n.\r\n"
        writer.write(b"250 2.0.0 queued as 1\r\n")
        await _expect(reader, writer, b"QUIT\r\n", b"221 2.0.0 Bye\r\n")

    results, connected = _run(script, lambda port: _deliver_then_quit(port, ["bob@hospital.test", "carol@hospital.test"]))
    assert results == {
        "bob@hospital.test": ("delivered", "250 2.0.0 queued as 1"),
        "carol@hospital.test": ("delivered", "250 2.0.0 queued as 1"),
    }
    assert connected


def test_without_pipelining_nothing_follows_a_refused_mail():
    async def script(reader, writer):
        await _greet(reader, writer, EHLO_PLAIN)
        await _expect(reader, writer, b"MAIL FROM:<alice@hospital.test>\r\n", b"550 5.7.1 sender refused\r\n")
        await _expect(reader, writer, b"QUIT\r\n", b"221 Bye\r\n")  # no RCPT, no DATA, no RSET

    results, connected = _run(script, lambda port: _deliver_then_quit(port, ["bob@hospital.test"]))
    assert results == {"bob@hospital.test": ("failed", "550 5.7.1 sender refused")}
    assert connected


def test_without_pipelining_each_recipient_gets_its_reply():
    async def script(reader, writer):
        await _greet(reader, writer, EHLO_PLAIN)
        for line, reply in (
            (b"MAIL FROM:<alice@hospital.test>\r\n", b"250 Ok\r\n"),
            (b"RCPT TO:<bob@hospital.test>\r\n", b"550 5.1.1 no such user\r\n"),
            (b"RCPT TO:<carol@hospital.test>\r\n", b"250 Ok\r\n"),
            (b"DATA\r\n", b"354 go\r\n"),
        ):
            await _expect(reader, writer, line, reply)
        await _message(reader)
        writer.write(b"250 2.0.0 Ok\r\n")
        await _expect(reader, writer, b"QUIT\r\n", b"221 Bye\r\n")

    results, _ = _run(script, lambda port: _deliver_then_quit(port, ["bob@hospital.test", "carol@hospital.test"]))
    assert results == {"bob@hospital.test": ("failed", "550 5.1.1 no such user"), "carol@hospital.test": ("delivered", "250 2.0.0 Ok")}


BOB, CAROL = "bob@hospital.test", "carol@hospital.test"
RSET_OK, QUIT_OK = (b"RSET\r\n", b"250 Ok\r\n"), (b"QUIT\r\n", b"221 Bye\r\n")


@pytest.mark.parametrize(
    "recipients, replies, then, results, kept",
    [
        pytest.param(
            [BOB, CAROL],
            b"451 4.3.0 try later\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no valid recipients\r\n",
            [QUIT_OK],  # nothing was open: no RSET
            dict.fromkeys([BOB, CAROL], ("pending", "451 4.3.0 try later")),
            True,
            id="mail-refused-decides-for-all",
        ),
        pytest.param(
            [BOB],
            b"250 Ok\r\n550 5.1.1 unknown\r\n354 go\r\n",  # RFC 2920 3.1: a server may do so
            [(b".\r\n", b"554 5.5.1 no valid recipients\r\n"), RSET_OK, QUIT_OK],  # ended empty, then reset
            {BOB: ("failed", "550 5.1.1 unknown")},
            True,
            id="354-with-no-recipient",
        ),
        pytest.param(
            [BOB, CAROL],
            b"250 Ok\r\n250 Ok\r\n452 4.2.2 mailbox full\r\n451 4.3.0 not now\r\n",
            [RSET_OK, QUIT_OK],
            {BOB: ("pending", "451 4.3.0 not now"), CAROL: ("pending", "452 4.2.2 mailbox full")},
            True,
            id="data-refused",
        ),
        pytest.param(
            [BOB],
            b"250 Ok\r\n550 5.1.1 unknown\r\n554 no valid recipients\r\n",
            [(b"RSET\r\n", b"500 what?\r\n")],
            {BOB: ("failed", "550 5.1.1 unknown")},
            False,  # a session that refuses RSET is not kept
            id="rset-refused",
        ),
    ],
)
def test_pipelined_refusals(recipients, replies, then, results, kept):
    async def script(reader, writer):
        await _pipelined(reader, writer, replies)
        for line, reply in then:
            await _expect(reader, writer, line, reply)
        if not kept:
            assert await reader.read() == b""  # the client closed

    assert _run(script, lambda port: _deliver_then_quit(port, recipients)) == (results, kept)


# A whole reply while idle (a 421 before an idle close), or the start of one
# whose rest would come later: either way the session is not kept.
@pytest.mark.parametrize("unowed", [b"421 4.4.2 idle too long\r\n", b"4"], ids=["reply", "part-of-a-reply"])
def test_bytes_while_idle_fail_the_session(unowed):
    closed = asyncio.Event()

    async def script(reader, writer):
        await _greet(reader, writer)
        writer.write(unowed)
        assert await reader.read() == b""  # the client closed rather than keep it for the next command
        closed.set()

    async def client(port):
        session = await _open(port)
        await asyncio.wait_for(closed.wait(), 10)
        assert not session.is_connected
        with pytest.raises(StaleSession):
            await session.transaction(b"alice@hospital.test", [b"bob@hospital.test"], MESSAGE)

    _run(script, client)


def test_data_after_the_starttls_reply_is_refused_before_any_handshake():
    async def script(reader, writer):
        await _greet(reader, writer, b"250-sink.test\r\n250 STARTTLS\r\n")
        assert await reader.readline() == b"STARTTLS\r\n"
        writer.write(b"220 2.0.0 go ahead\r\n250 2.1.0 injected reply to MAIL\r\n")  # CVE-2011-0411's kind
        assert await reader.read() == b""  # closed, never a ClientHello

    async def client(port):
        with pytest.raises(SessionError, match="reply to no command|after the reply to STARTTLS"):
            await _open(port, tls=ssl.create_default_context(), starttls=True)

    _run(script, client)


def test_starttls_not_offered_is_an_error():
    async def client(port):
        with pytest.raises(SessionError, match="does not offer STARTTLS"):
            await _open(port, tls=ssl.create_default_context(), starttls=True)

    _run(_greeted, client)


@pytest.mark.parametrize("greeting", [b"554 5.7.1 no service\r\n", b"421 4.3.2 busy\r\n"])
def test_a_refusing_greeting_opens_no_session(greeting):
    async def script(reader, writer):
        writer.write(greeting)
        assert await reader.read() == b""

    async def client(port):
        with pytest.raises(UnexpectedReply) as refused:
            await _open(port)
        assert refused.value.reply.code == int(greeting[:3])

    _run(script, client)


def test_ehlo_refused_falls_back_to_helo_without_pipelining():
    async def script(reader, writer):
        writer.write(b"220 old.test\r\n")
        await _expect(reader, writer, b"EHLO relay.test\r\n", b"502 5.5.2 what is EHLO\r\n")
        await _expect(reader, writer, b"HELO relay.test\r\n", b"250 old.test\r\n")
        await _expect(reader, writer, b"QUIT\r\n", b"221 Bye\r\n")

    async def client(port):
        session = await _open(port)
        assert (session.extensions, session.pipelining) == ({}, False)
        await session.quit()

    _run(script, client)


def test_ehlo_extensions_are_read():
    async def script(reader, writer):
        await _greet(reader, writer, b"250-sink.test hello\r\n250-pipelining\r\n250-SIZE 1000\r\n250 AUTH PLAIN LOGIN\r\n")
        await _expect(reader, writer, b"QUIT\r\n", b"221 Bye\r\n")

    async def client(port):
        session = await _open(port)
        assert session.extensions == {"PIPELINING": "", "SIZE": "1000", "AUTH": "PLAIN LOGIN"}
        assert session.pipelining
        await session.quit()

    _run(script, client)


def test_a_silent_next_hop_times_out():
    async def script(reader, writer):
        writer.write(b"220 sink.test\r\n")
        await reader.readline()  # EHLO, never answered
        assert await reader.read() == b""

    async def client(port):
        with pytest.raises(ReplyTimeout, match="no reply within 0.2 s"):
            await _open(port, timeout=0.2)

    _run(script, client)


def test_what_is_not_a_reply_fails_the_session():
    async def script(reader, writer):
        writer.write(b"220 sink.test\r\n")
        await reader.readline()
        writer.write(b"hello there\r\n")
        assert await reader.read() == b""

    async def client(port):
        with pytest.raises(SessionError, match="not an SMTP reply line"):
            await _open(port)

    _run(script, client)


def test_a_session_closed_while_idle_is_stale_only_when_reused():
    async def script(reader, writer):
        await _greet(reader, writer)
        writer.close()  # as a next hop's idle timeout does

    async def client(port):
        session = await _open(port)
        # Whether the close is seen before MAIL is written or after, nothing was answered.
        assert await _transaction(session, "alice@hospital.test", ["bob@hospital.test"], MESSAGE, reused=True) is None
        results, healthy = await _transaction(session, "alice@hospital.test", ["bob@hospital.test"], MESSAGE, reused=False)
        assert results["bob@hospital.test"][0] == "pending" and results["bob@hospital.test"][1].startswith("4.4.2 ")
        assert not healthy

    _run(script, client)


def test_a_connection_lost_after_replies_is_not_stale():
    async def script(reader, writer):
        await _greet(reader, writer)
        await _lines(reader, 3)
        writer.write(b"250 Ok\r\n")  # then the connection closes (FIN: the 250 always arrives first)

    async def client(port):
        session = await _open(port)
        outcome = await _transaction(session, "alice@hospital.test", ["bob@hospital.test"], MESSAGE, reused=True)
        assert outcome is not None  # part of it was answered: a deferral, not a silent retry
        assert outcome[0]["bob@hospital.test"][0] == "pending" and not outcome[1]

    _run(script, client)


@pytest.mark.parametrize("argument", [b"TO:<a@b.test>\r\nRCPT TO:<c@d.test>", b"x\ny", b"x\ry"])
def test_a_command_argument_cannot_end_the_line(argument):
    with pytest.raises(ValueError, match="CR or LF"):
        command(b"RCPT", argument)


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_data_refused_with_a_positive_reply_is_never_taken_for_a_delivery(pipelining):
    async def script(reader, writer):
        await _greet(reader, writer, EHLO_PIPELINING if pipelining else EHLO_PLAIN)
        if pipelining:
            await _lines(reader, 3)
            writer.write(b"250 Ok\r\n250 Ok\r\n250 ok, but where is the 354?\r\n")
        else:
            for line in (b"MAIL FROM:<alice@hospital.test>\r\n", b"RCPT TO:<bob@hospital.test>\r\n"):
                await _expect(reader, writer, line, b"250 Ok\r\n")
            await _expect(reader, writer, b"DATA\r\n", b"250 ok, but where is the 354?\r\n")
        assert await reader.read() == b""  # no message, no RSET: a session in an unknown state is closed

    results, connected = _run(script, lambda port: _deliver_then_quit(port, [BOB]))
    assert results == {BOB: ("pending", "4.4.2 unexpected reply to DATA: 250 ok, but where is the 354?")}
    assert not connected


def test_replies_received_stand_when_the_session_fails_after_them():
    async def script(reader, writer):
        await _pipelined(reader, writer, b"250 Ok\r\n550 5.1.1 unknown\r\n250 Ok\r\n421 4.7.0 too many errors\r\n")
        assert await reader.readline() == b"RSET\r\n"  # then the next hop hangs up

    results, connected = _run(script, lambda port: _deliver_then_quit(port, [BOB, CAROL]))
    assert results == {BOB: ("failed", "550 5.1.1 unknown"), CAROL: ("pending", "421 4.7.0 too many errors")}
    assert not connected


def test_any_positive_reply_accepts_a_recipient():
    async def script(reader, writer):
        await _pipelined(reader, writer, b"250 Ok\r\n252 2.1.5 cannot verify, will try\r\n354 go\r\n")
        await _message(reader)
        writer.write(b"250 2.0.0 queued\r\n")
        await _expect(reader, writer, b"QUIT\r\n", b"221 Bye\r\n")

    assert _run(script, lambda port: _deliver_then_quit(port, [BOB])) == ({BOB: ("delivered", "250 2.0.0 queued")}, True)


def test_junk_after_the_reply_to_the_message_leaves_the_delivery_standing():
    async def script(reader, writer):
        await _pipelined(reader, writer, b"250 Ok\r\n250 Ok\r\n354 go\r\n")
        await _message(reader)
        writer.write(b"250 2.0.0 queued\r\nthis is not SMTP\r\n")
        assert await reader.read() == b""  # closed, never reused

    assert _run(script, lambda port: _deliver_then_quit(port, [BOB])) == ({BOB: ("delivered", "250 2.0.0 queued")}, False)


def test_ehlo_deferred_is_not_followed_by_helo():
    async def script(reader, writer):
        writer.write(b"220 busy.test\r\n")
        await _expect(reader, writer, b"EHLO relay.test\r\n", b"421 4.3.2 too busy, come back later\r\n")
        assert await reader.read() == b""  # RFC 5321 4.1.4: HELO only after a 5xx to EHLO

    async def client(port):
        with pytest.raises(UnexpectedReply) as refused:
            await _open(port)
        assert refused.value.reply.code == 421

    _run(script, client)


BIG = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 24_000  # 24 MB: more than the socket buffers hold


def test_a_next_hop_that_stops_reading_the_message_is_dropped_at_once():
    sent = asyncio.Event()

    async def script(reader, writer):
        await _pipelined(reader, writer, b"250 Ok\r\n250 Ok\r\n354 go\r\n")
        await sent.wait()  # reading nothing meanwhile
        # Aborted: what the relay still held was dropped, not kept in memory to send.
        assert len(await _everything(reader)) < len(BIG)

    async def client(port):
        session = await _open(port, timeout=1.0)
        results, healthy = await asyncio.wait_for(_transaction(session, "alice@hospital.test", [BOB], BIG, reused=False), 30)
        sent.set()
        assert results == {BOB: ("pending", "4.4.2 the next hop took no data for 1 s")} and not healthy

    _run(script, client)


def test_a_slow_next_hop_that_keeps_reading_gets_the_whole_message():
    async def script(reader, writer):
        await _pipelined(reader, writer, b"250 Ok\r\n250 Ok\r\n354 go\r\n")
        received = bytearray()
        while not received.endswith(b"\r\n.\r\n"):
            received += await reader.read(1 << 20)
            await asyncio.sleep(0.02)  # a slow link: the whole message takes longer than the timeout
        assert len(received) == len(BIG) + 3
        writer.write(b"250 2.0.0 queued\r\n")
        await _expect(reader, writer, b"QUIT\r\n", b"221 Bye\r\n")

    async def client(port):
        session = await _open(port, timeout=1.0)
        started = asyncio.get_running_loop().time()
        outcome = await asyncio.wait_for(_transaction(session, "alice@hospital.test", [BOB], BIG, reused=False), 60)
        assert asyncio.get_running_loop().time() - started > 1.0  # longer than the timeout, never idle that long
        assert outcome == ({BOB: ("delivered", "250 2.0.0 queued")}, True)
        await session.quit()

    _run(script, client)


def test_an_idle_session_is_reused_only_while_young_and_judged_by_the_bundle_in_force():
    async def client(port):
        hop, bundle = NextHop("127.0.0.1", port, TlsMode.NONE), Bundle("hops", ())
        pool = Destinations(per_destination=4)
        session = await _open(port)
        pool.keep(hop, Pooled(session, bundle, opened=1000.0))
        young = pool.reuse(hop, bundle, now=1000.0 + REUSE_TIME_LIMIT - 1)
        assert young is not None and young.session is session  # young, and judged by the bundle in force
        pool.keep(hop, young)
        assert pool.reuse(hop, Bundle("hops", ()), now=1001.0) is None  # a reload made another bundle
        assert not session.is_connected  # and the session was closed, not left open
        session = await _open(port)
        pool.keep(hop, Pooled(session, bundle, opened=1000.0))
        assert pool.reuse(hop, bundle, now=1000.0 + REUSE_TIME_LIMIT) is None  # too old
        assert not session.is_connected

    _run(_greeted, client, connections=2)


def test_a_message_not_known_to_be_crlf_only_is_canonicalised_before_it_is_sent():
    assert wire_data(b"A: b\n\nbare LF\rCR\r\n.dot") == b"A: b\r\n\r\nbare LF\r\nCR\r\n..dot\r\n.\r\n"
    received = b"A: b\r\n\r\n.dot\r\nend\r\n"
    assert wire_data(received, crlf_only=True) == wire_data(received) == b"A: b\r\n\r\n..dot\r\nend\r\n.\r\n"
    # The flag is the caller's word (Envelope.crlf_only, set only for what the DATA check passed): no second scan.
    assert wire_data(b"x\ny\r\n", crlf_only=True) == b"x\ny\r\n.\r\n"


class Refused(Exception):
    pass


async def _everything(reader: asyncio.StreamReader) -> bytes:
    """What the client sends until it goes (closed, or aborted: a reset)."""
    heard = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(4096):
            heard += chunk
    return heard


def _refusing(seen: list[bytes | None]) -> Callable[[bytes | None], None]:
    def check(certificate: bytes | None) -> None:
        seen.append(certificate)
        raise Refused("not this next hop")

    return check


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    from relay.smtp.tls import client_context, server_context
    from tests.smtp.helpers import make_pki

    pki = make_pki(tmp_path_factory.mktemp("tls"))
    server = server_context(pki.path("server.pem"), pki.path("server.key"))
    return server, client_context([pki.root.cert], check_hostname=False), pki.server.cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("starttls", [False, True], ids=["implicit-tls", "starttls"])
def test_a_refused_next_hop_is_told_nothing_over_tls(tls_pair, starttls):
    server_tls, client_tls, der = tls_pair
    seen: list[bytes | None] = []
    heard: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if starttls:
            await _greet(reader, writer, b"250-sink.test\r\n250 STARTTLS\r\n")
            await _expect(reader, writer, b"STARTTLS\r\n", b"220 go ahead\r\n")
            await writer.start_tls(server_tls)
        else:
            writer.write(b"220 sink.test ESMTP\r\n")
        heard.append(await _everything(reader))

    async def client(port: int) -> None:
        with pytest.raises(Refused):
            await _open(port, tls=client_tls, starttls=starttls, check_peer=_refusing(seen))

    _run(script, client, tls=None if starttls else server_tls)
    assert seen == [der] and heard == [b""]  # judged on its certificate, before any EHLO over TLS


def test_without_pipelining_a_reply_no_rcpt_allows_stops_the_transaction_before_data():
    heard: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer, EHLO_PLAIN)
        for line, reply in (
            (b"MAIL FROM:<alice@hospital.test>\r\n", b"250 Ok\r\n"),
            (b"RCPT TO:<bob@hospital.test>\r\n", b"250 Ok\r\n"),
            (b"RCPT TO:<carol@hospital.test>\r\n", b"354 not a reply to RCPT\r\n"),
        ):
            await _expect(reader, writer, line, reply)
        heard.append(await _everything(reader))

    async def client(port: int) -> None:
        session = await _open(port)
        with pytest.raises(SessionError, match="unexpected reply to RCPT"):
            await session.transaction(b"alice@hospital.test", [b"bob@hospital.test", b"carol@hospital.test"], MESSAGE)
        assert not session.is_connected

    _run(script, client)
    assert heard == [b""]  # no DATA after it, no RSET: the session is dropped
