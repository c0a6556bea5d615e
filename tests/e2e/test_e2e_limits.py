"""Resource limits and failures: each answered with its code, and the service goes on."""

from __future__ import annotations

import shutil
import smtplib
import socket
import time

import pytest

from tests.smtp.helpers import Relay, Sink, basic_spec, make_pki, message, service_toml, write_spec

LIMITS = {
    "max_message_bytes": 5000,
    "max_recipients": 3,
    "max_header_count": 20,
    "max_received": 5,
    "max_mime_depth": 3,
    "max_connections_per_ip": 3,
    "command_timeout": 1.0,
    "session_timeout": 2.5,
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("limits")
    pki = make_pki(d / "pki")
    sink = Sink(d / "sink", 0).start()
    write_spec(d / "spec.json", basic_spec(pki, sink.port))
    relay = Relay(service_toml(d, pki, listeners=("loopback",), limits=LIMITS), d / "spec.json").start()
    yield type("Env", (), {"relay": relay, "sink": sink, "dir": d})
    relay.stop()
    sink.stop()


def _client(env) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", env.relay.ports["loopback"], timeout=10)
    client.ehlo("client.test")
    return client


def _send(client: smtplib.SMTP, data: bytes, rcpts: tuple[str, ...] = ("bob@hospital.test",)) -> tuple[int, bytes]:
    assert client.mail("alice@hospital.test")[0] == 250
    for r in rcpts:
        assert client.rcpt(r)[0] == 250
    return client.data(data)


def _ok(client: smtplib.SMTP) -> None:
    code, text = _send(client, message("alice@hospital.test", ["bob@hospital.test"]))
    assert code == 250, text


def test_size_is_advertised_and_enforced(env):
    with _client(env) as client:
        assert client.esmtp_features["size"] == "5000"
        code, text = client.docmd("MAIL", "FROM:<alice@hospital.test> SIZE=6000")
        assert (code, text.split(b":")[0]) == (552, b"5.3.4 message-too-big")
        client.rset()
        code, text = _send(client, message("alice@hospital.test", ["bob@hospital.test"], body=("y" * 70 + "\r\n") * 80))
        assert (code, text.split(b":")[0]) == (552, b"5.3.4 message-too-big")
        _ok(client)


def test_recipients_per_message(env):
    with _client(env) as client:
        client.mail("alice@hospital.test")
        for n in range(3):
            assert client.rcpt(f"r{n}@hospital.test")[0] == 250
        code, text = client.rcpt("r3@hospital.test")
        assert (code, text.split(b":")[0]) == (452, b"4.5.3 too-many-recipients")


def test_long_line_header_count_and_loop(env):
    with _client(env) as client:
        code, text = _send(client, message("alice@hospital.test", ["bob@hospital.test"], body="z" * 1200 + "\r\n"))
        assert (code, text.split(b":")[0]) == (500, b"5.5.2 line-too-long")
        many = "".join(f"X-H{n}: v\r\n" for n in range(25))
        code, text = _send(client, message("alice@hospital.test", ["bob@hospital.test"], extra=many))
        assert (code, text.split(b":")[0]) == (552, b"5.6.0 header-too-big")
        loop = "".join(f"Received: from h{n} by h{n + 1}\r\n" for n in range(6)).encode()
        code, text = _send(client, loop + message("alice@hospital.test", ["bob@hospital.test"]))
        assert (code, text.split(b":")[0]) == (554, b"5.4.6 mail-loop")
        code, text = _send(client, loop[: loop.index(b"Received: from h5")] + message("alice@hospital.test", ["bob@hospital.test"]))
        assert code == 250, text


def test_connections_per_client_ip(env):
    sockets = []
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", env.relay.ports["loopback"]), timeout=10)
            assert s.makefile("rb").readline().startswith(b"220")
            sockets.append(s)
        with socket.create_connection(("127.0.0.1", env.relay.ports["loopback"]), timeout=10) as extra:
            assert extra.makefile("rb").readline().startswith(b"421 4.7.0 too-many-connections")
    finally:
        for s in sockets:
            s.close()
    env.relay.wait_event("connect", refused="too-many-connections")


def test_idle_client_is_dropped(env):
    with socket.create_connection(("127.0.0.1", env.relay.ports["loopback"]), timeout=10) as s:
        reader = s.makefile("rb")
        assert reader.readline().startswith(b"220")
        started = time.monotonic()
        assert reader.read() == b""  # the server closes after command_timeout of silence
        assert 0.8 < time.monotonic() - started < 8


def test_slow_client_hits_the_session_deadline(env):
    with socket.create_connection(("127.0.0.1", env.relay.ports["loopback"]), timeout=10) as s:
        reader = s.makefile("rb")
        reader.readline()
        started, last = time.monotonic(), b""
        while time.monotonic() - started < 8:
            try:
                s.sendall(b"NOOP\r\n")
            except OSError:
                break
            last = reader.readline()
            if not last.startswith(b"250"):
                break
            time.sleep(0.3)  # a slow but never idle client: one command every 0.3 s
        assert last.startswith(b"421 4.4.2 session-timeout"), last


def test_storage_failure_is_a_temporary_error(env):
    tmp = env.dir / "spool" / "tmp"
    shutil.rmtree(tmp)
    tmp.write_text("not a directory")  # every spool write now fails
    try:
        with _client(env) as client:
            code, text = _send(client, message("alice@hospital.test", ["bob@hospital.test"]))
            assert (code, text.split(b":")[0]) == (451, b"4.3.0 storage-error")
    finally:
        tmp.unlink()
        tmp.mkdir()
    with _client(env) as client:
        _ok(client)


def _nested(depth: int) -> bytes:
    inner = b"Content-Type: text/plain\r\n\r\nx\r\n"
    for n in range(depth):
        inner = (
            f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n'.encode() + inner + f"--b{n}--\r\n".encode()
        )
    return b"From: <alice@hospital.test>\r\nTo: <bob@hospital.test>\r\nMIME-Version: 1.0\r\n" + inner


def test_mime_limits_apply_to_unsigned_mail_too(env):
    with _client(env) as client:
        code, text = _send(client, _nested(5))
        assert (code, text.split(b":")[0]) == (554, b"5.6.0 malformed"), text
        code, text = _send(client, _nested(2))
        assert code == 250, text


JUNK = [
    b"\x00\xff\xfe garbage\r\n",
    b"EHLO \xc3\xa9t\xc3\xa9\r\nMAIL FROM:<\xff@x>\r\n",
    b"EHLO c\r\nMAIL FROM:<a@b> BODY=9BIT\r\nMAIL FROM:<<<>>>\r\nRCPT TO:<>\r\nDATA\r\n",
    b"EHLO c\r\nAUTH PLAIN !!!notbase64\r\nAUTH LOGIN\r\n*\r\nAUTH CRAM-MD5\r\n",
    b"EHLO c\r\nMAIL FROM:<alice@hospital.test>\r\nRCPT TO:<bob@hospital.test>\r\nDATA\r\n\r\n.\r\n",
    b"EHLO c\r\nMAIL FROM:<alice@hospital.test>\r\nRCPT TO:<bob@hospital.test>\r\nDATA\r\nFrom: <\r\n\r\n.\r\n",
    b"HELO " + b"h" * 5000 + b"\r\n",
    b"EHLO c\r\nVRFY bob\r\nEXPN list\r\nHELP\r\nNOOP\r\nRSET\r\nSTARTTLS\r\n",
]


@pytest.mark.parametrize("junk", JUNK)
def test_bad_input_gets_answers_and_the_service_goes_on(env, junk):
    with socket.create_connection(("127.0.0.1", env.relay.ports["loopback"]), timeout=10) as s:
        reader = s.makefile("rb")
        assert reader.readline().startswith(b"220")
        s.sendall(junk + b"QUIT\r\n")
        replies = reader.read()  # until the server closes after QUIT
    codes = {line[:1] for line in replies.splitlines()}
    assert codes <= {b"2", b"3", b"4", b"5"}, replies  # every line is an SMTP reply
    assert replies.rstrip().endswith(b"221 Bye"), replies
    with _client(env) as client:
        _ok(client)
