"""DATA as delivery writes it: what the next hop stores is the spooled message, byte for byte.

Two next hops: an aiosmtpd sink, which does not offer PIPELINING (one command,
one reply), and Postfix's smtp-sink, which does (MAIL, RCPT and DATA together).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from relay.queue.delivery import _transaction
from relay.queue import smtp_client
from relay.queue.smtp_client import Session
from tests.smtp.helpers import Sink, free_port, stop, wait_until

HEAD = b"From: <alice@hospital.test>\r\nSubject: dots\r\n\r\n"


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    sink = Sink(tmp_path_factory.mktemp("sink"), 0).start()
    yield sink
    sink.stop()


class PostfixSink:
    """Postfix's smtp-sink dumping each transaction to a file: the envelope as
    X-Mail-Args and X-Rcpt-Args, its Received header, then the message with LF line ends."""

    def __init__(self, *options: str) -> None:
        # smtp-sink drops to nobody, which cannot enter pytest's private temporary directories.
        self.directory = Path(tempfile.mkdtemp(prefix="smtp-sink-"))
        self.directory.chmod(0o777)
        self.port = free_port()
        self.output = tempfile.TemporaryFile("w+")  # a file, never a pipe nobody reads while it runs
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", *options, "-d", f"{self.directory}/m.", f"127.0.0.1:{self.port}", "16"],
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._listening)

    def _listening(self) -> bool:
        assert self.proc.poll() is None, self.output.seek(0) or self.output.read()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stored(self, before: set[Path]) -> tuple[str, list[str], bytes]:
        """(sender, recipients, message with LF line ends) of the one new dump."""
        wait_until(lambda: len(set(self.directory.iterdir()) - before) == 1)
        [path] = set(self.directory.iterdir()) - before
        head, message = path.read_bytes().split(b"\n\tby smtp-sink ", 1)
        _, message = message.split(b"\n", 2)[1:]  # the rest of the Received header
        fields = [line.split(b": ", 1) for line in head.splitlines() if line.startswith(b"X-")]
        sender = next(v for k, v in fields if k == b"X-Mail-Args").decode().strip("<>")
        recipients = [v.decode().strip("<>") for k, v in fields if k == b"X-Rcpt-Args"]
        assert message.endswith(b"\n\n")  # smtp-sink's separator after the message
        return sender, recipients, message[:-1]

    def stop(self) -> None:
        stop(self.proc)  # type: ignore[arg-type]
        self.output.close()
        shutil.rmtree(self.directory)


@pytest.fixture(scope="module")
def postfix_sink():
    sink = PostfixSink()
    yield sink
    sink.stop()


async def _send_all(
    port: int, messages: list[bytes], sender: str = "alice@hospital.test", recipient: str = "bob@hospital.test", crlf_only: bool = False
) -> list[dict[str, tuple[str, str]]]:
    client = await Session.open("127.0.0.1", port, helo_name="relay.test", connect_timeout=10, command_timeout=10)
    outcomes = []
    for message in messages:  # one session: each DATA must leave it ready for the next
        outcome = await _transaction(client, sender, [recipient], message, reused=False, crlf_only=crlf_only)
        assert outcome is not None and outcome[1], outcome
        outcomes.append(outcome[0])
    await client.quit()
    return outcomes


@pytest.mark.parametrize(
    "spooled, stored",
    [
        (HEAD + b"plain\r\n", HEAD + b"plain\r\n"),
        (HEAD + b".\r\n..\r\n.leading dot\r\nend\r\n", HEAD + b".\r\n..\r\n.leading dot\r\nend\r\n"),
        (b".first line is a dot\r\n\r\nbody\r\n", b".first line is a dot\r\n\r\nbody\r\n"),
        (HEAD + b"no final line end", HEAD + b"no final line end\r\n"),
        (HEAD + b"bare\nLF\rCR\r\n.dot\n", HEAD + b"bare\r\nLF\r\nCR\r\n.dot\r\n"),
        (HEAD + (b"x" * 76 + b"\r\n.\r\n") * 3000, HEAD + (b"x" * 76 + b"\r\n.\r\n") * 3000),
    ],
    ids=["plain", "dot-lines", "leading-dot", "no-final-crlf", "bare-line-ends", "large"],
)
def test_the_next_hop_stores_the_message_unchanged(sink, spooled, stored):
    before = set(sink.directory.glob("*.eml"))
    [results] = asyncio.run(_send_all(sink.port, [spooled]))
    assert results["bob@hospital.test"][0] == "delivered"
    [path] = set(sink.directory.glob("*.eml")) - before
    head, _, content = path.read_bytes().partition(b"\n")
    assert json.loads(head) == {"from": "alice@hospital.test", "to": ["bob@hospital.test"]}
    assert content == stored


@pytest.mark.parametrize("crlf_only, scans", [(False, 1), (True, 0)])
def test_a_message_known_to_be_crlf_only_goes_unscanned_and_unchanged(sink, monkeypatch, crlf_only, scans):
    scanned: list[bytes] = []
    check = smtp_client.check_line_endings
    monkeypatch.setattr(smtp_client, "check_line_endings", lambda data: scanned.append(data) or check(data))
    before = set(sink.directory.glob("*.eml"))
    spooled = HEAD + b".dot line\r\nend\r\n"
    [results] = asyncio.run(_send_all(sink.port, [spooled], crlf_only=crlf_only))
    assert results["bob@hospital.test"][0] == "delivered" and len(scanned) == scans
    [path] = set(sink.directory.glob("*.eml")) - before
    assert path.read_bytes().partition(b"\n")[2] == spooled


def test_consecutive_transactions_share_a_session(sink):
    before = len(list(sink.directory.glob("*.eml")))
    results = asyncio.run(_send_all(sink.port, [HEAD + b".one\r\n", HEAD + b"two\r\n", HEAD + b"three"]))
    assert [r["bob@hospital.test"][0] for r in results] == ["delivered"] * 3
    assert len(list(sink.directory.glob("*.eml"))) == before + 3


def test_the_next_hop_gets_the_paths_verbatim(sink):
    sender, recipient = "o'brien+lab@hospital.test", "x=y/{service}~1@hospital.test"
    before = set(sink.directory.glob("*.eml"))
    [results] = asyncio.run(_send_all(sink.port, [HEAD + b"paths\r\n"], sender, recipient))
    assert results[recipient][0] == "delivered"
    [path] = set(sink.directory.glob("*.eml")) - before
    head, _, _ = path.read_bytes().partition(b"\n")
    assert json.loads(head) == {"from": sender, "to": [recipient]}


@pytest.mark.parametrize(
    "spooled, stored",
    [
        (HEAD + b".\r\n..\r\n.leading dot\r\nend\r\n", HEAD + b".\r\n..\r\n.leading dot\r\nend\r\n"),
        (b".first line is a dot\r\n\r\nbody\r\n", b".first line is a dot\r\n\r\nbody\r\n"),
        (HEAD + b"no final line end", HEAD + b"no final line end\r\n"),
        (HEAD + (b"x" * 76 + b"\r\n.\r\n") * 3000, HEAD + (b"x" * 76 + b"\r\n.\r\n") * 3000),
    ],
    ids=["dot-lines", "leading-dot", "no-final-crlf", "large"],
)
def test_a_pipelining_next_hop_stores_the_message_unchanged(postfix_sink, spooled, stored):
    before = set(postfix_sink.directory.iterdir())
    recipients = ["bob@hospital.test", "carol@clinic.test"]
    [results] = asyncio.run(_send_many(postfix_sink.port, [(spooled, recipients)]))
    assert results == dict.fromkeys(recipients, ("delivered", "250 2.0.0 Ok"))
    assert postfix_sink.stored(before) == ("alice@hospital.test", recipients, stored.replace(b"\r\n", b"\n"))


def test_a_next_hop_refusing_every_recipient_leaves_the_session_usable():
    # 5xx to every RCPT; smtp-sink then stops offering PIPELINING, so one command at a time.
    refusing = PostfixSink("-f", "rcpt")
    try:
        messages = [(HEAD + b"one\r\n", ["bob@hospital.test", "carol@clinic.test"]), (HEAD + b"two\r\n", ["bob@hospital.test"])]
        outcomes = asyncio.run(_send_many(refusing.port, messages, pipelining=False))  # one session, kept healthy
        assert outcomes == [
            dict.fromkeys(["bob@hospital.test", "carol@clinic.test"], ("failed", "500 5.3.0 Error: command failed")),
            {"bob@hospital.test": ("failed", "500 5.3.0 Error: command failed")},
        ]
        assert list(refusing.directory.iterdir()) == []
    finally:
        refusing.stop()


async def _send_many(
    port: int, messages: list[tuple[bytes, list[str]]], pipelining: bool = True
) -> list[dict[str, tuple[str, str]]]:
    session = await Session.open("127.0.0.1", port, helo_name="relay.test", connect_timeout=10, command_timeout=10)
    assert session.pipelining is pipelining
    outcomes = []
    for message, recipients in messages:
        outcome = await _transaction(session, "alice@hospital.test", recipients, message, reused=bool(outcomes))
        assert outcome is not None and outcome[1], outcome
        outcomes.append(outcome[0])
    await session.quit()
    return outcomes
