"""DATA as delivery writes it: what the next hop stores is the spooled message, byte for byte."""

from __future__ import annotations

import asyncio
import json

import pytest

from relay.queue.delivery import _transaction
from relay.queue.smtp_client import Session
from tests.smtp.helpers import Sink

HEAD = b"From: <alice@hospital.test>\r\nSubject: dots\r\n\r\n"


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    sink = Sink(tmp_path_factory.mktemp("sink"), 0).start()
    yield sink
    sink.stop()


async def _send_all(
    port: int, messages: list[bytes], sender: str = "alice@hospital.test", recipient: str = "bob@hospital.test"
) -> list[dict[str, tuple[str, str]]]:
    client = await Session.open("127.0.0.1", port, helo_name="relay.test", connect_timeout=10, command_timeout=10)
    outcomes = []
    for message in messages:  # one session: each DATA must leave it ready for the next
        outcome = await _transaction(client, sender, [recipient], message, reused=False)
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
