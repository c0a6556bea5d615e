"""A next hop for tests: an aiosmtpd server in its own process.

usage: sink.py DIRECTORY PORT MODE [CERT KEY]
MODE: accept (store each message as DIRECTORY/N.eml), reject (550 5.7.1 at DATA), tempfail (451 at RCPT),
drop-reused (accept one message per session: a second MAIL gets no reply, the connection is closed, as a
next hop that closed an idle session would look to the client that sends MAIL on it),
idle-close (accept; a session idle for half a second is closed, as aiosmtpd's timeout does),
implicit (accept, over implicit TLS: needs CERT and KEY; with them, other modes offer STARTTLS).
Each EHLO adds a line to DIRECTORY/sessions.log, each closed connection one to DIRECTORY/closed.log.
Prints {"ready": {"sink": [host, port]}} once listening; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import ssl
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory: Path, mode: str) -> None:
        self.directory, self.mode, self.counter = directory, mode, itertools.count()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # One line per EHLO: with plain SMTP, one per session (reuse is counted by its absence).
        with open(self.directory / "sessions.log", "a") as log:
            log.write(f"{session.peer[1]} tls={session.ssl is not None}\n")
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        if self.mode == "drop-reused" and getattr(session, "transactions", 0):
            server.transport.close()
            return "421 4.4.2 never sent: the connection is closed"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self.mode == "tempfail":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.mode == "reject":
            return "550 5.7.1 refused by policy"
        n = next(self.counter)
        head = json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos}).encode()
        tmp = self.directory / f".{os.getpid()}.{n}.tmp"
        tmp.write_bytes(head + b"\n" + envelope.original_content)
        os.replace(tmp, self.directory / f"{os.getpid()}-{n:06d}.eml")
        session.transactions = getattr(session, "transactions", 0) + 1
        return "250 2.0.0 stored"


class LoggedSMTP(SMTP):
    def __init__(self, handler: Sink, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.closed_log = handler.directory / "closed.log"

    def connection_lost(self, error) -> None:
        with open(self.closed_log, "a") as log:
            log.write(f"{self.session.peer[1]}\n")
        super().connection_lost(error)


async def main() -> None:
    directory, port, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    directory.mkdir(parents=True, exist_ok=True)
    context = None
    if len(sys.argv) > 5:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[4], sys.argv[5])
    handler = Sink(directory, mode)
    loop = asyncio.get_running_loop()
    implicit = mode == "implicit"
    server = await loop.create_server(
        lambda: LoggedSMTP(
            handler, tls_context=None if implicit else context, hostname="sink.test", timeout=0.5 if mode == "idle-close" else 300
        ),
        host="127.0.0.1",
        port=port,
        ssl=context if implicit else None,
    )
    print(json.dumps({"ready": {"sink": ["127.0.0.1", server.sockets[0].getsockname()[1]]}}), flush=True)
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    await stopped.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
