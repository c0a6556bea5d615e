"""One SMTP connection: aiosmtpd's protocol with the relay's connection limits, timeouts and AUTH.

aiosmtpd does the protocol (including discarding data pipelined after
STARTTLS); this subclass adds what a relay on the Internet needs: per-IP and
total connection caps, a whole-session deadline against slow clients, and
password checks run off the event loop (scrypt costs tens of milliseconds).
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from base64 import b64decode
from collections import Counter
from typing import Any

from aiosmtpd.proxy_protocol import ProxyData
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, syntax

from ..audit.log import audit
from ..core.address import DOT_ATOM
from ..metrics.registry import Metrics
from .credentials import Credentials
from .data import CHUNK, DataProblem, read_data
from .deadline import Deadline
from .proxy import INVALID, PROXY_TIMEOUT, UNTRUSTED, ProxyPolicy, proxied_client
from .replies import Refusal, protocol_reply, reply


class ConnectionLimiter:
    """Open sessions in total and per client address."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self.by_ip: Counter[str] = Counter()

    def admit(self, ip: str) -> str | None:
        """None when admitted, else why not."""
        if sum(self.by_ip.values()) >= self.total:
            return f"more than {self.total} sessions open"
        if self.by_ip[ip] >= self.per_ip:
            return f"more than {self.per_ip} sessions from {ip}"
        self.by_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]


# `<local@domain>` with a dot-atom on each side, then parameters: what
# nearly every client sends. Anything else goes to aiosmtpd's full parser.
_SIMPLE_PATH = re.compile(rf"\s*<({DOT_ATOM}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:\s+([^\s()\"\\][^()\"\\]*))?")


@functools.cache
def hook_names(cls: type, prefixes: tuple[str, ...]) -> list[str]:
    """The names of `cls` that aiosmtpd looks up by prefix when a connection opens."""
    return [name for name in dir(cls) if name.startswith(prefixes)]


_DATA_REFUSALS = {
    DataProblem.TOO_MUCH: (Refusal.MESSAGE_TOO_BIG, "the message is over the size limit"),
    DataProblem.LINE_TOO_LONG: (Refusal.LINE_TOO_LONG, "a line of the message is over the limit"),
}


class RelaySMTP(SMTP):
    def __init__(
        self,
        handler: Any,
        *,
        metrics: Metrics,
        limiter: ConnectionLimiter,
        credentials: Credentials | None,
        session_timeout: float,
        line_length_limit: int,
        sessions: set[RelaySMTP],
        proxy: ProxyPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        # Read by SMTP.__init__ to size the stream reader: instance value first.
        self.line_length_limit = line_length_limit
        super().__init__(handler, proxy_protocol_timeout=PROXY_TIMEOUT if proxy else None, **kwargs)
        self.proxy = proxy
        self._client_ip: str | None = None  # named by a PROXY header
        self._awaiting_header = False  # a trusted proxy connected; its header has not been accepted yet
        self.limiter = limiter
        self.metrics = metrics
        self.credentials = credentials
        self.session_timeout = session_timeout
        self.sessions = sessions
        self.busy = False  # inside end-of-DATA processing: let it finish on shutdown
        self._admitted_ip: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # aiosmtpd's command timeout, restarted after every command; aiosmtpd
        # itself only ever cancels what it holds in _timeout_handle.
        self._command_deadline = Deadline(self.loop, lambda: self._timeout_cb())
        self._timeout_handle = self._command_deadline  # type: ignore[assignment]

    def __dir__(self) -> list[str]:
        """The SMTP command and AUTH methods only.

        aiosmtpd builds its command and AUTH tables for every connection
        from dir() and getattr() on each name; with every attribute listed
        that was half the cost of opening a session.
        """
        return hook_names(type(self), ("smtp_", "auth_"))

    async def push(self, status: Any) -> None:
        await super().push(protocol_reply(status) if isinstance(status, str) else status)

    # -- connection life ----------------------------------------------------

    @property
    def peer_ip(self) -> str:
        """The client's address: the one a trusted PROXY header gave, else the socket's."""
        return self._client_ip or self.socket_ip

    @property
    def socket_ip(self) -> str:
        peer = self.session.peer if self.session else None
        return str(peer[0]) if isinstance(peer, tuple) else "unknown"

    def tls_object(self) -> ssl.SSLObject | None:
        return self.transport.get_extra_info("ssl_object") if self.transport else None

    async def _handle_client(self) -> None:
        if self.proxy is None:
            if not await self._admit(self.peer_ip):
                return
        elif not self.proxy.trusts(self.socket_ip):
            audit("connect", listener=self.listener_name, peer=self.socket_ip, refused=UNTRUSTED)
            self.transport.close()
            return
        # Behind a proxy, admission waits for the header (handle_PROXY -> accept_proxy).
        self._awaiting_header = self.proxy is not None
        self.sessions.add(self)
        self._deadline = self.loop.call_later(self.session_timeout, self._session_expired)
        if self.tls_object() is not None:  # implicit TLS: the handshake is already done
            self.audit_tls()
        await super()._handle_client()

    async def _admit(self, ip: str, **fields: Any) -> bool:
        refused = self.limiter.admit(ip)
        if refused:
            audit("connect", peer=ip, refused=str(Refusal.TOO_MANY_CONNECTIONS), **fields)
            await self.push(reply(Refusal.TOO_MANY_CONNECTIONS, refused))
            self.transport.close()
            return False
        self._admitted_ip = ip
        audit("connect", listener=self.listener_name, peer=ip, **fields)
        return True

    async def accept_proxy(self, data: ProxyData) -> bool:
        """The handler's handle_PROXY: the header's client becomes the peer, then the limits apply."""
        client = proxied_client(data, self.socket_ip)
        if client is None:
            return False  # audited when the connection closes
        self._awaiting_header = False
        self._client_ip = client
        return await self._admit(client, proxy=self.socket_ip)

    @property
    def listener_name(self) -> str:
        return str(getattr(getattr(self.event_handler, "listener", None), "name", ""))

    def audit_tls(self) -> None:
        tls = self.tls_object()
        if tls is not None:
            self.metrics.tls_handshake(self.listener_name, tls.version())
            cipher = tls.cipher()
            audit("tls", listener=self.listener_name, peer=self.peer_ip, version=tls.version(), cipher=cipher[0] if cipher else None,
                  client_certificate=tls.getpeercert(binary_form=True) is not None)

    def _reset_timeout(self, duration: float | None = None) -> None:
        self._command_deadline.set(duration or self._timeout_duration)

    def _session_expired(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"421 4.4.2 session-timeout: session time limit reached\r\n")
            self.transport.close()

    def close_idle(self) -> bool:
        """Shutdown: close at once unless a message is being processed; True when closed."""
        if self.busy or self.transport is None:
            return False
        if not self.transport.is_closing():
            self.transport.write((reply(Refusal.SHUTTING_DOWN, "service shutting down") + "\r\n").encode())
            self.transport.close()
        return True

    def connection_lost(self, error: Exception | None) -> None:
        if self._awaiting_header:  # aiosmtpd closes on a missing, late or malformed header without asking
            data = self.session.proxy_data if self.session else None
            why = (data.error if data is not None else "") or "no usable PROXY header"
            audit("connect", listener=self.listener_name, peer=self.socket_ip, refused=INVALID, error=why)
            self._awaiting_header = False
        if self._deadline is not None:
            self._deadline.cancel()
        if self._admitted_ip is not None:
            self.limiter.release(self._admitted_ip)
            self._admitted_ip = None
        self.sessions.discard(self)
        super().connection_lost(error)

    # -- MAIL and RCPT paths ----------------------------------------------------

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's path parser, with a fast path for the plain form (its parser costs ~50 µs a call)."""
        simple = _SIMPLE_PATH.fullmatch(arg) if arg else None
        if simple is None:
            try:
                return super()._getaddr(arg)
            except Exception:  # noqa: BLE001 - the stdlib parser fails on some junk (a lone "<"...): a syntax error, not a 500
                return None, None
        address = simple.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, simple.group(2) or ""

    # -- DATA, read in chunks ------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the stream read by relay.smtp.data, not line by line."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # The stream's limit bounds a command line; during DATA it bounds one
        # read (and the buffer), so the whole message comes in a few reads.
        line_limit, self._reader._limit = self._reader._limit, CHUNK  # type: ignore[attr-defined]
        try:
            read = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.IncompleteReadError:
            self.transport.close()  # the client went away inside DATA
            return
        finally:
            self._reader._limit = line_limit  # type: ignore[attr-defined]
        if read.problem is not None:
            self._set_post_data_state()
            await self.push(reply(*_DATA_REFUSALS[read.problem]))
            return
        self.envelope.content = self.envelope.original_content = read.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    # -- AUTH PLAIN / LOGIN, checked in a thread ------------------------------

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        blob = await self._auth_argument(args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\0")
        if len(parts) != 3:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check_password(parts[1], parts[2])

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        login = await self._auth_argument(args, self.AuthLoginUsernameChallenge)
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._check_password(login, password)

    async def _auth_argument(self, args: list[str], challenge: str) -> bytes | None:
        if len(args) == 1:
            answer = await self.challenge_auth(challenge)
            return None if answer is MISSING else answer
        try:
            return b64decode(args[1].encode(), validate=True)
        except ValueError:
            await self.push("501 5.5.2 Can't decode base64")
            return None

    async def _check_password(self, login: bytes, password: bytes) -> AuthResult:
        user = None
        if self.credentials is not None:
            user = await self.loop.run_in_executor(None, self.credentials.check, login, password)
        audit("auth", peer=self.peer_ip, user=user, success=user is not None)
        if user is None:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=user)
