"""PROXY protocol: two `relay serve` instances behind a real HAProxy (send-proxy-v2, round robin).

The client connects from its own loopback address (127.0.0.5); both relays
must record that address, not HAProxy's, in the audit trail and in
`Received:`. Hand-written v1 headers check the per-address limit and the
refusals: a proxy outside `proxy_from`, a connection without a header.
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.smtp.helpers import Relay, Sink, basic_spec, free_port, make_pki, message, service_toml, wait_until, write_spec

CLIENT = "127.0.0.5"  # the client's own source address, distinct from HAProxy's 127.0.0.1
PER_IP = 2


def _relay(d: Path, pki, spec: Path, proxied: bool = True) -> Relay:
    d.mkdir()
    config = service_toml(d, pki, listeners=("loopback",), limits={"max_connections_per_ip": PER_IP})
    if proxied:
        with config.open("a") as toml:  # the loopback listener is the last table of the file
            toml.write('proxy_protocol = true\nproxy_from = ["127.0.0.1/32"]\n')
    return Relay(config, spec).start()


def _haproxy_config(d: Path, port: int, backends: list[int]) -> Path:
    servers = "".join(f"    server relay{i} 127.0.0.1:{p} send-proxy-v2\n" for i, p in enumerate(backends))
    path = d / "haproxy.cfg"
    path.write_text(
        "global\n    maxconn 100\n"
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
        f"frontend smtp\n    bind 127.0.0.1:{port}\n    default_backend relays\n"
        f"backend relays\n    balance roundrobin\n{servers}"
    )
    return path


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"haproxy exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling for the listening port with a deadline
    raise AssertionError(f"haproxy not listening on {port}")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is needed (Debian package haproxy, installed by setup.sh)")
    d = tmp_path_factory.mktemp("proxy")
    pki = make_pki(d / "pki")
    sink = Sink(d / "sink", 0).start()
    write_spec(d / "spec.json", basic_spec(pki, sink.port))
    relays = [_relay(d / "one", pki, d / "spec.json"), _relay(d / "two", pki, d / "spec.json")]
    direct = _relay(d / "direct", pki, d / "spec.json", proxied=False)
    port = free_port()
    config = _haproxy_config(d, port, [r.ports["loopback"] for r in relays])
    with open(d / "haproxy.out", "wb") as out:
        haproxy = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, haproxy)
        yield type("Env", (), {"relays": relays, "direct": direct, "sink": sink, "port": port, "dir": d})
    finally:
        haproxy.terminate()
        haproxy.wait(10)
        for relay in (*relays, direct):
            relay.stop()
        sink.stop()


def test_both_instances_accept_and_see_the_real_client(env):
    sent = []
    for i in range(4):
        with smtplib.SMTP("127.0.0.1", env.port, timeout=30, source_address=(CLIENT, 0)) as client:
            client.ehlo("client.test")
            client.mail("alice@hospital.test")
            assert client.rcpt("bob@hospital.test")[0] == 250
            code, text = client.data(message("alice@hospital.test", ["bob@hospital.test"], subject=f"marker-proxy-{i}"))
            assert code == 250, text
            sent.append(text.decode().split("queued as ")[1])
    for relay in env.relays:  # round robin spreads the sessions over both
        connects = relay.events("connect", peer=CLIENT)
        assert connects and {e["proxy"] for e in connects} == {"127.0.0.1"}
        done = [e for e in relay.events("done") if e.get("queue_id") in sent]
        assert done and {e["peer"] for e in done} == {CLIENT} and {e["reply"] for e in done} == {"250 2.0.0"}
    assert sum(len(r.events("connect", peer=CLIENT)) for r in env.relays) == 4
    assert {e["queue_id"] for r in env.relays for e in r.events("done", peer=CLIENT)} == set(sent)
    for i in range(4):
        delivered = env.sink.wait_for_marker(f"marker-proxy-{i}")
        assert f"[{CLIENT}]".encode() in delivered.split(b"\r\n\r\n", 1)[0]
        assert b"[127.0.0.1]" not in delivered.split(b"\r\n\r\n", 1)[0]


def _raw(env, header: bytes, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", env.relays[0].ports["loopback"]), timeout=10, source_address=(source, 0))
    sock.sendall(header)
    return sock


def _reply(sock: socket.socket) -> bytes:
    """One reply line; b"" when the relay closes without a word (a reset counts: unread input was discarded)."""
    data = b""
    while not data.endswith(b"\r\n"):
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_per_address_limit_counts_the_client_named_in_the_header(env):
    header = b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 25\r\n"
    held = [_raw(env, header) for _ in range(PER_IP)]
    try:
        assert all(_reply(s).startswith(b"220 ") for s in held)
        with _raw(env, header) as extra:
            assert _reply(extra).startswith(b"421 4.7.0 too-many-connections")
        with _raw(env, b"PROXY TCP4 192.0.2.10 127.0.0.1 40000 25\r\n") as other:  # another client, same proxy
            assert _reply(other).startswith(b"220 ")
    finally:
        for s in held:
            s.close()
    refused = env.relays[0].events("connect", peer="192.0.2.9", refused="too-many-connections")
    assert refused and refused[0]["proxy"] == "127.0.0.1"


def test_a_connection_from_outside_proxy_from_is_closed_unheard(env):
    with _raw(env, b"PROXY TCP4 192.0.2.66 127.0.0.1 40000 25\r\n", source="127.0.0.9") as sock:
        assert _reply(sock) == b""  # closed without a greeting
    assert env.relays[0].events("connect", peer="127.0.0.9", refused="proxy-untrusted")
    assert not env.relays[0].events("connect", peer="192.0.2.66")


def test_a_trusted_proxy_must_send_a_valid_header(env):
    with _raw(env, b"EHLO client.test\r\n") as sock:
        assert _reply(sock) == b""
    with _raw(env, b"PROXY TCP4 not-an-address 127.0.0.1 1 25\r\n") as sock:
        assert _reply(sock) == b""
    # Recorded when the relay sees the connection close, which may come after the client's EOF.
    wait_until(lambda: len(env.relays[0].events("connect", peer="127.0.0.1", refused="proxy-invalid")) == 2)
    invalid = env.relays[0].events("connect", peer="127.0.0.1", refused="proxy-invalid")
    assert len(invalid) == 2 and all(e["error"] for e in invalid)


def test_v2_local_header_keeps_the_proxy_as_peer(env):
    # HAProxy's own health checks: signature, version 2 + LOCAL, family UNSPEC, no addresses.
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0x00, 0x00])
    with _raw(env, local) as sock:
        assert _reply(sock).startswith(b"220 ")
    assert [e for e in env.relays[0].events("connect", peer="127.0.0.1") if e.get("proxy") == "127.0.0.1" and not e.get("refused")]


def test_a_listener_without_proxy_protocol_refuses_the_header(env):
    with socket.create_connection(("127.0.0.1", env.direct.ports["loopback"]), timeout=10, source_address=(CLIENT, 0)) as sock:
        assert _reply(sock).startswith(b"220 ")
        sock.sendall(b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 25\r\n")
        assert _reply(sock).startswith(b"500 ")  # an unknown command, as any other
        sock.sendall(b"QUIT\r\n")
        assert _reply(sock).startswith(b"221 ")
    assert env.direct.events("connect", peer=CLIENT)
    assert not [e for e in env.direct.audit_lines if e.get("peer") == "192.0.2.9"]
