"""The SMTP client sessions of delivery: to a next hop, with pipelining (RFC 2920).

When the next hop advertises PIPELINING, MAIL, every RCPT and DATA leave in
one write and their replies are read together; the message follows the 354.
A transaction then costs two round trips instead of three plus one per
recipient. No maintained asyncio SMTP client pipelines (aiosmtplib reads one
reply per command), hence this module. Replies are cut by the pure
`relay.queue.reply_reader.ReplyReader`; this module does the I/O.

A session is only ever in one of two states between calls: ready for a new
transaction, or failed (and closed). Bytes that arrive when no reply is owed
(a `421` before an idle close, data after the reply to STARTTLS) fail it, as
does a reply outside the codes its command allows (RFC 5321 4.3.2), so a
reply is never paired with the wrong command and no session of unknown state
is kept. Reply codes are judged by their class, 2xx, 4xx or 5xx.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from dataclasses import dataclass
from typing import Callable, Sequence

from ..core.smime_entity import canonical
from ..smtp.deadline import Deadline
from ..smtp.decide import check_line_endings
from .reply_reader import Reply, ReplyFormatError, ReplyReader

# RFC 5321 4.5.3.2.6: the reply to the end of the message may take 10 minutes
# (the next hop may deliver it before answering); counted once it is all sent.
DATA_DONE_TIMEOUT = 600.0


class SessionError(Exception):
    """The session cannot go on: lost, timed out, or a reply out of protocol."""


class SessionLost(SessionError):
    """The connection is gone."""


class StaleSession(SessionLost):
    """Lost before the next hop answered anything of the transaction: a reused session the
    next hop had closed while idle. Nothing of the message was sent."""


class ReplyTimeout(SessionError):
    """No reply (or no progress in sending) within the time allowed."""


class UnexpectedReply(SessionError):
    """A reply that does not let the session start (greeting, EHLO/HELO, STARTTLS)."""

    def __init__(self, step: str, reply: Reply) -> None:
        super().__init__(f"{step}: {reply.summary()}")
        self.reply = reply


@dataclass(frozen=True, slots=True)
class TransactionReplies:
    """What the next hop answered, command by command; None where a command was not sent."""

    mail: Reply
    recipients: dict[str, Reply]
    data: Reply | None  # the reply to DATA (354 when the message went)
    end: Reply | None  # the reply to the end of the message

    @property
    def accepted(self) -> list[str]:
        return [r for r, reply in self.recipients.items() if reply.kind == 2]


class _Channel(asyncio.Protocol):
    """Bytes to replies, and the count of replies owed by the commands written."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = ReplyReader()
        self.replies: collections.deque[Reply] = collections.deque()
        self.owed = 1  # the greeting
        self.transport: asyncio.Transport | None = None
        self.failure: SessionError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._wanted = 0
        # Every exchange sets it; a session reused for many messages keeps one timer.
        self._reply_deadline = Deadline(loop, self._timed_out)
        self._reply_timeout = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.attach(transport)  # type: ignore[arg-type]

    def attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        # Told as soon as anything stays unsent, and again once all is sent.
        transport.set_write_buffer_limits(high=0)

    def pause_writing(self) -> None:
        pass  # `drained` asks the transport itself

    def resume_writing(self) -> None:
        _settle(self._drain)

    def data_received(self, data: bytes) -> None:
        try:
            replies, error = self.reader.feed(data), None
        except ReplyFormatError as refused:
            replies, error = refused.replies, SessionError(str(refused))
        for reply in replies:
            if self.owed == 0:
                error = SessionError(f"reply to no command: {reply.summary(80)}")
                break
            self.owed -= 1
            self.replies.append(reply)
        if error is None and self.owed == 0 and not self.reader.idle:
            error = SessionError("data from the next hop after the replies owed")
        if error is not None:
            self.fail(error)
        self._wake()

    def eof_received(self) -> bool:
        self.fail(SessionLost("the next hop closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(SessionLost(f"connection lost: {exc}" if exc else "connection closed"))
        self.transport = None
        self._reply_deadline.cancel()

    def fail(self, error: SessionError) -> None:
        if self.failure is None:
            self.failure = error
        if self.transport is not None and not self.transport.is_closing():
            # Not close(): that would wait to send what a stuck next hop no longer reads.
            self.transport.abort()
        self._wake()
        _settle(self._drain)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (len(self.replies) >= self._wanted or self.failure):
            waiter.set_result(None)

    def send(self, data: bytes, replies: int) -> None:
        if self.failure is not None:
            raise self.failure
        assert self.transport is not None
        self.owed += replies
        self.transport.write(data)

    async def take(self, count: int, timeout: float) -> list[Reply]:
        """The next `count` replies, waiting at most `timeout` seconds for them all."""
        if len(self.replies) < count and self.failure is None:
            self._wanted = count
            self._waiter = self.loop.create_future()
            self._reply_timeout = timeout
            self._reply_deadline.set(timeout)
            try:
                await self._waiter
            finally:
                self._reply_deadline.clear()
                self._waiter = None
        if len(self.replies) < count:
            assert self.failure is not None
            raise self.failure
        return [self.replies.popleft() for _ in range(count)]

    def _timed_out(self) -> None:
        self.fail(ReplyTimeout(f"no reply within {self._reply_timeout:g} s"))

    async def drained(self, timeout: float) -> None:
        """Until the transport has passed everything written to the kernel; a failure
        when `timeout` seconds go by with nothing more sent."""
        while self.failure is None and self.transport is not None and (unsent := self.transport.get_write_buffer_size()):
            self._drain = self.loop.create_future()
            timer = self.loop.call_later(timeout, _settle, self._drain)
            try:
                await self._drain
            finally:
                timer.cancel()
                self._drain = None
            if self.transport is not None and self.transport.get_write_buffer_size() >= unsent:
                self.fail(ReplyTimeout(f"the next hop took no data for {timeout:g} s"))
        if self.failure is not None:
            raise self.failure


# Given the next hop's DER certificate (None in the clear); raises to refuse the next hop.
PeerCheck = Callable[[bytes | None], None]


def _settle(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def command(verb: bytes, argument: bytes = b"") -> bytes:
    """One command line; an argument that could end the line is refused, not sent."""
    if b"\r" in argument or b"\n" in argument:
        raise ValueError("CR or LF in an SMTP command argument")
    return verb + (b" " + argument if argument else b"") + b"\r\n"


def wire_data(message: bytes, crlf_only: bool = False) -> bytes:
    """The message dot-stuffed and followed by the end-of-data line (RFC 5321 4.5.2).

    A bare CR or LF never reaches a next hop (SMTP smuggling): the message is
    canonicalised, unless the caller knows every line break is CRLF already
    (crlf_only: a received message, checked at DATA and stored as it was).
    What the relay writes itself (DSNs, signed or encrypted messages) is checked.
    """
    if not crlf_only and check_line_endings(message) is not None:
        message = canonical(message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    return (b"." if stuffed.startswith(b".") else b"") + stuffed + b".\r\n"


class Session:
    """An open session with a next hop, greeted, after EHLO (and STARTTLS when asked for)."""

    def __init__(self, channel: _Channel, extensions: dict[str, str], timeout: float) -> None:
        self._channel = channel
        self.extensions = extensions
        self.timeout = timeout

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        helo_name: str,
        connect_timeout: float,
        command_timeout: float,
        tls: ssl.SSLContext | None = None,
        starttls: bool = False,
        check_peer: PeerCheck | None = None,
    ) -> Session:
        """Connect, read the greeting, EHLO (HELO if refused); with `starttls`, upgrade and EHLO
        again. `tls` without `starttls` is implicit TLS (RFC 8314).

        `check_peer` is given the next hop's certificate as soon as the TLS
        handshake is done, before anything is read or sent over it, and
        refuses the next hop by raising: nothing is said to a peer it refuses.
        """
        loop = asyncio.get_running_loop()
        channel = _Channel(loop)
        implicit = tls if tls is not None and not starttls else None
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: channel, host, port, ssl=implicit, server_hostname=host if implicit else None),
                connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ReplyTimeout(f"no connection within {connect_timeout:g} s") from None
        session = cls(channel, {}, command_timeout)
        try:
            if implicit is not None and check_peer is not None:
                check_peer(session.peer_certificate())
            await session._greet(helo_name)
            if starttls:
                assert tls is not None
                await session._starttls(loop, tls, host, connect_timeout)
                if check_peer is not None:
                    check_peer(session.peer_certificate())
                await session._greet(helo_name, greeting=False)
        except BaseException:
            session.close()
            raise
        return session

    async def _greet(self, helo_name: str, greeting: bool = True) -> None:
        if greeting:
            [reply] = await self._channel.take(1, self.timeout)
            if reply.code != 220:
                raise UnexpectedReply("greeting", reply)
        name = helo_name.encode("ascii")
        [reply] = await self._exchange(command(b"EHLO", name))
        if reply.kind == 2:
            self.extensions = _extensions(reply)
            return
        if reply.kind != 5:  # only a server that does not know EHLO gets HELO (RFC 5321 4.1.4)
            raise UnexpectedReply("EHLO", reply)
        [reply] = await self._exchange(command(b"HELO", name))
        if reply.kind != 2:
            raise UnexpectedReply("HELO", reply)
        self.extensions = {}

    async def _starttls(self, loop: asyncio.AbstractEventLoop, context: ssl.SSLContext, host: str, timeout: float) -> None:
        if "STARTTLS" not in self.extensions:
            raise SessionError("the next hop does not offer STARTTLS")
        [reply] = await self._exchange(command(b"STARTTLS"))
        if reply.code != 220:
            raise UnexpectedReply("STARTTLS", reply)
        channel = self._channel
        # Anything sent in the clear after the 220 would be read as if it came
        # over TLS (the response injection of CVE-2011-0411's kind).
        if channel.replies or not channel.reader.idle or channel.failure is not None:
            raise channel.failure or SessionError("data after the reply to STARTTLS")
        assert channel.transport is not None
        upgraded = await loop.start_tls(channel.transport, channel, context, server_hostname=host, ssl_handshake_timeout=timeout)
        assert upgraded is not None
        channel.attach(upgraded)

    async def _exchange(self, *commands: bytes) -> list[Reply]:
        self._channel.send(b"".join(commands), len(commands))
        return await self._channel.take(len(commands), self.timeout)

    # -- state ---------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        # Every way a connection ends (closed by either side, aborted, lost) goes through fail().
        return self._channel.failure is None

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    def peer_certificate(self) -> bytes | None:
        """The DER certificate the next hop presented over TLS, None in the clear."""
        transport = self._channel.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None

    def close(self) -> None:
        self._channel.fail(SessionLost("closed by the relay"))

    async def quit(self) -> None:
        try:
            await self._exchange(command(b"QUIT"))
        finally:
            self.close()

    # -- transactions --------------------------------------------------------

    async def transaction(
        self, sender: bytes, recipients: Sequence[bytes], message: bytes, *, crlf_only: bool = False
    ) -> TransactionReplies:
        """One mail transaction; the session is left ready for the next one, or closed.
        Raises SessionError when the session fails before the outcome is known.
        crlf_only: see wire_data."""
        try:
            return await self._transaction(sender, recipients, message, crlf_only)
        except SessionError:
            self.close()
            raise

    async def _transaction(self, sender: bytes, recipients: Sequence[bytes], message: bytes, crlf_only: bool) -> TransactionReplies:
        envelope = [command(b"MAIL", b"FROM:<" + sender + b">")]
        envelope += [command(b"RCPT", b"TO:<" + r + b">") for r in recipients]
        if self.pipelining:
            replies = await self._opening(*envelope, command(b"DATA"))
            mail, rcpts, data = replies[0], replies[1:-1], replies[-1]
            _check_kinds("MAIL", [mail], (2, 4, 5))
            _check_kinds("RCPT", rcpts, (2, 4, 5))
        else:
            # One at a time, each reply is judged before the next command: after a reply
            # no command allows, the session's state is unknown and nothing more is sent.
            [mail] = await self._opening(envelope[0])
            _check_kinds("MAIL", [mail], (2, 4, 5))
            rcpts = []
            for line in envelope[1:] if mail.kind == 2 else ():
                rcpts += await self._exchange(line)
                _check_kinds("RCPT", rcpts[-1:], (2, 4, 5))
            data = None
            if _anyone_accepted(mail, rcpts):
                [data] = await self._exchange(command(b"DATA"))
        if data is not None and data.code != 354:
            _check_kinds("DATA", [data], (4, 5))
        by_recipient = dict(zip((r.decode("ascii") for r in recipients), rcpts))
        if data is not None and data.code == 354 and _anyone_accepted(mail, rcpts):
            end = await self._message(wire_data(message, crlf_only))
            if end.kind not in (2, 4, 5):
                self.close()  # its reply tells nothing; what the next hop did is unknown
            return TransactionReplies(mail, by_recipient, data, end)
        await self._wind_up(mail, data)
        return TransactionReplies(mail, by_recipient, data, None)

    async def _message(self, wire: bytes) -> Reply:
        self._channel.send(wire, 1)
        await self._channel.drained(self.timeout)
        [end] = await self._channel.take(1, max(self.timeout, DATA_DONE_TIMEOUT))
        return end

    async def _wind_up(self, mail: Reply, data: Reply | None) -> None:
        """After a transaction that sent no message: a DATA accepted with nothing to send
        ends empty (RFC 2920 3.1), then RSET. The replies stand if this fails; the session
        is closed."""
        try:
            if data is not None and data.code == 354:
                await self._exchange(b".\r\n")
            if mail.kind == 2:
                await self._reset()
        except SessionError:
            self.close()

    async def _opening(self, *commands: bytes) -> list[Reply]:
        if self._channel.failure is not None:  # failed while idle: nothing is sent
            raise StaleSession(str(self._channel.failure))
        try:
            return await self._exchange(*commands)
        except SessionLost as error:
            if self._channel.replies:
                raise
            raise StaleSession(str(error)) from error

    async def _reset(self) -> None:
        """RSET after a transaction that did not reach the end of data; a session that
        does not take it is closed rather than left in an unknown state."""
        [reply] = await self._exchange(command(b"RSET"))
        if reply.kind != 2:
            self.close()


def _anyone_accepted(mail: Reply, rcpts: list[Reply]) -> bool:
    """Whether the message is to be sent: MAIL and at least one RCPT accepted."""
    return mail.kind == 2 and any(r.kind == 2 for r in rcpts)


def _check_kinds(step: str, replies: list[Reply], kinds: tuple[int, ...]) -> None:
    for reply in replies:
        if reply.kind not in kinds:
            raise SessionError(f"unexpected reply to {step}: {reply.summary(120)}")


def _extensions(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) and their parameters; the first line is the greeting."""
    extensions = {}
    for line in reply.lines[1:]:
        keyword, _, parameters = line.strip().partition(" ")
        if keyword:
            extensions[keyword.upper()] = parameters
    return extensions
