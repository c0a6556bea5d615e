"""The relay in its own process, driven by real clients (swaks, msmtp, smtplib, raw sockets) and delivering to a real sink."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import ssl
import subprocess

import pytest

from tests.smtp.helpers import Relay, Sink, add_user, basic_spec, make_pki, message, service_toml, swaks, write_spec, wait_until

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("relay")
    pki = make_pki(d / "pki")
    sink = Sink(d / "sink", 0).start()
    spec = basic_spec(pki, sink.port)
    spec["domains"].append(
        {
            "name": "strict.test",
            "local": True,
            "next_hop": {"host": "127.0.0.1", "port": sink.port},
            "policy": {"require_signature": True, "unsigned_senders": ["robot@strict.test"]},
        }
    )
    write_spec(d / "spec.json", spec)
    config = service_toml(d, pki, metrics=True)
    for user in ("alice@hospital.test", "carol@strict.test", "robot@strict.test"):
        add_user(config, user, PASSWORD)
    relay = Relay(config, d / "spec.json").start()
    yield type("Env", (), {"relay": relay, "sink": sink, "pki": pki, "dir": d})
    relay.stop()
    sink.stop()


def _auth(user: str = "alice@hospital.test", password: str = PASSWORD) -> list[str]:
    return ["--auth", "PLAIN", "--auth-user", user, "--auth-password", password]


def _delivered_with(env, marker: str) -> bytes:
    return env.sink.wait_for_marker(marker)


def test_starttls_submission_with_auth_is_queued_traced_and_delivered(env):
    data = message("alice@hospital.test", ["bob@hospital.test"], subject="marker-starttls")
    result = swaks("--port", str(env.relay.ports["submission"]), "--tls", *_auth(), "--from", "alice@hospital.test", "--to", "bob@hospital.test", data=data)
    assert result.returncode == 0, result.stdout
    assert "TLS started with cipher TLSv1." in result.stdout
    assert "<~  250 2.0.0 OK queued as " in result.stdout
    delivered = _delivered_with(env, "marker-starttls")
    head, _, body = delivered.partition(b"\n")
    assert json.loads(head) == {"from": "alice@hospital.test", "to": ["bob@hospital.test"]}
    assert body.startswith(b"Received: from ")
    assert b"with ESMTPSA id " in body
    assert b"Authentication-Results: relay.test;\r\n\tsmime=none;\r\n\tauth=pass smtp.auth=alice@hospital.test\r\n" in body


def test_implicit_tls_submission_with_msmtp(env, tmp_path):
    data = message("alice@hospital.test", ["bob@hospital.test"], subject="marker-msmtp")
    rc = tmp_path / "msmtprc"
    rc.write_text(
        "account relay\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls off\ntls_certcheck off\nauth plain\n"
        "user alice@hospital.test\npassword %s\nfrom alice@hospital.test\n" % (env.relay.ports["submissions"], PASSWORD)
    )
    rc.chmod(0o600)
    result = subprocess.run(
        ["msmtp", "-C", str(rc), "-a", "relay", "bob@hospital.test"], input=data, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert b"marker-msmtp" in _delivered_with(env, "marker-msmtp")


def test_implicit_tls_submission_with_swaks(env):
    data = message("alice@hospital.test", ["bob@hospital.test"], subject="marker-tlsc")
    result = swaks("--port", str(env.relay.ports["submissions"]), "--tlsc", *_auth(), "--from", "alice@hospital.test", "--to", "bob@hospital.test", data=data)
    assert result.returncode == 0, result.stdout
    assert "250-AUTH LOGIN PLAIN" in result.stdout
    _delivered_with(env, "marker-tlsc")


def test_the_ehlo_reply_is_written_at_once(env):
    with socket.create_connection(("127.0.0.1", env.relay.ports["submission"]), timeout=10) as raw:
        assert raw.recv(4096).startswith(b"220 ")
        raw.sendall(b"EHLO client.test\r\n")
        reply = raw.recv(65536)  # one write arrives whole; one per line would be read line by line
    lines = reply.split(b"\r\n")
    assert lines[-1] == b"" and lines[-2] == b"250 HELP" and len(lines) > 3
    assert all(line.startswith(b"250-") for line in lines[:-2]) and b"250-STARTTLS" in lines


def test_no_auth_before_tls_and_no_tls_1_1(env):
    with smtplib.SMTP("127.0.0.1", env.relay.ports["submission"], timeout=10) as client:
        code, features = client.ehlo("client.test")
        assert code == 250 and b"AUTH" not in features and b"STARTTLS" in features
        assert client.docmd("AUTH", "PLAIN AGFAYgBj")[0] == 530
        assert client.docmd("MAIL", "FROM:<alice@hospital.test>")[0] == 530


def _tls12_with(cipher: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(cipher)
    return context


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-SHA384"])
def test_tls12_accepts_ecdhe_aes_gcm_and_cbc_sha2(env, cipher):
    with smtplib.SMTP_SSL("127.0.0.1", env.relay.ports["submissions"], context=_tls12_with(cipher), timeout=10) as client:
        assert client.sock.cipher()[0] == cipher and client.sock.version() == "TLSv1.2"


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES256-CCM"])
def test_tls12_refuses_other_suites(env, cipher):
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionResetError)):
        with smtplib.SMTP_SSL("127.0.0.1", env.relay.ports["submissions"], context=_tls12_with(cipher), timeout=10):
            pass


def _tls_client(env) -> smtplib.SMTP:
    context = ssl.create_default_context(cafile=str(env.pki.path("root.pem")))
    context.check_hostname = False
    client = smtplib.SMTP("127.0.0.1", env.relay.ports["submission"], timeout=10)
    client.starttls(context=context)
    client.ehlo("client.test")
    return client


def test_wrong_password_and_foreign_sender(env):
    with _tls_client(env) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as error:
            client.login("alice@hospital.test", "wrong password")
        assert error.value.smtp_code == 535
        client.login("alice@hospital.test", PASSWORD)
        code, text = client.docmd("MAIL", "FROM:<bob@hospital.test>")
        assert (code, text.split(b":")[0]) == (550, b"5.7.1 sender-not-owned")
        assert client.docmd("MAIL", "FROM:<alice@hospital.test>")[0] == 250
        code, text = client.docmd("RCPT", "TO:<someone@elsewhere.test>")
        assert (code, text.split(b":")[0]) == (550, b"5.7.1 relay-denied")
        assert client.docmd("RCPT", "TO:<x@peer.test>")[0] == 250  # authenticated: relaying to known peers
        # The From mailbox must be the authenticated user's too.
        code, text = client.data(message("bob@hospital.test", ["x@peer.test"]))
        assert code == 550 and text.startswith(b"5.7.1 sender-not-owned: authenticated as alice@hospital.test, From is another")


def test_envelope_tampering_refused(env):
    with _tls_client(env) as client:
        client.login("alice@hospital.test", PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("alice@hospital.test", ["bob@hospital.test", "x@peer.test"], message("alice@hospital.test", ["bob@hospital.test"]))
        assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.7.1 envelope-mismatch: recipient x@peer.test")


def test_unsigned_refused_when_signature_required_unless_exempt(env):
    with _tls_client(env) as client:
        client.login("carol@strict.test", PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("carol@strict.test", ["dan@strict.test"], message("carol@strict.test", ["dan@strict.test"]))
        assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.7.1 unsigned:")
    with _tls_client(env) as client:
        client.login("robot@strict.test", PASSWORD)
        assert client.sendmail("robot@strict.test", ["dan@strict.test"], message("robot@strict.test", ["dan@strict.test"], subject="marker-robot")) == {}
    _delivered_with(env, "marker-robot")


def _mx(env, cert: str | None):
    args = ["--port", str(env.relay.ports["mx"]), "--tls"]
    if cert:
        args += ["--tls-cert", str(env.pki.path(f"{cert}.pem")), "--tls-key", str(env.pki.path(f"{cert}.key"))]
    return args


def test_mx_peer_with_listed_operator_certificate(env):
    data = message("doc@peer.test", ["bob@hospital.test"], subject="marker-mx")
    result = swaks(*_mx(env, "peer"), "--from", "doc@peer.test", "--to", "bob@hospital.test", data=data)
    assert result.returncode == 0, result.stdout
    assert "with ESMTPS id" in _delivered_with(env, "marker-mx").decode()
    assert not any("AUTH" in line for line in result.stdout.splitlines() if line.startswith("<~"))


def test_mx_peer_over_implicit_tls(env):
    data = message("doc@peer.test", ["bob@hospital.test"], subject="marker-mxs")
    args = ["--port", str(env.relay.ports["mxs"]), "--tlsc", "--tls-cert", str(env.pki.path("peer.pem")), "--tls-key", str(env.pki.path("peer.key"))]
    result = swaks(*args, "--from", "doc@peer.test", "--to", "bob@hospital.test", data=data)
    assert result.returncode == 0, result.stdout
    _delivered_with(env, "marker-mxs")
    result = swaks("--port", str(env.relay.ports["mxs"]), "--tlsc", "--from", "doc@peer.test", "--to", "bob@hospital.test")
    assert "<~* 530 5.7.0 client-certificate-missing:" in result.stdout


def test_mx_refusals(env):
    # No client certificate.
    result = swaks(*_mx(env, None), "--from", "doc@peer.test", "--to", "bob@hospital.test")
    assert "<~* 530 5.7.0 client-certificate-missing:" in result.stdout
    # A listed peer may not use another domain's senders, nor relay elsewhere.
    result = swaks(*_mx(env, "peer"), "--from", "someone@hospital.test", "--to", "bob@hospital.test")
    assert "<~* 550 5.7.1 operator-not-listed: CN=mx.peer.test" in result.stdout
    result = swaks(*_mx(env, "peer"), "--from", "doc@peer.test", "--to", "x@elsewhere.test")
    assert "<~* 550 5.7.1 relay-denied:" in result.stdout
    result = swaks(*_mx(env, "peer"), "--from", "doc@peer.test", "--to", "x@peer.test")
    assert "<~* 550 5.7.1 relay-denied: relaying to peer.test is not allowed" in result.stdout
    # A certificate from an unknown root does not get through the handshake.
    result = swaks(*_mx(env, "stranger"), "--from", "doc@peer.test", "--to", "bob@hospital.test")
    assert result.returncode != 0 and "250 2.1.0" not in result.stdout
    # Plain text on the MX: STARTTLS first.
    with smtplib.SMTP("127.0.0.1", env.relay.ports["mx"], timeout=10) as client:
        client.ehlo("peer.test")
        assert client.docmd("MAIL", "FROM:<doc@peer.test>")[0] == 530


def _raw_session(port: int, commands: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        reader = s.makefile("rb")
        reader.readline()
        replies = b""
        for command in commands:
            s.sendall(command)
            line = reader.readline()
            while line[3:4] == b"-":
                line = reader.readline()
            replies += line
        return replies


@pytest.mark.parametrize("smuggled", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\r"])
def test_smtp_smuggling_refused(env, smuggled):
    marker = f"marker-smuggle-{smuggled.hex()}"
    body = (
        f"From: <alice@hospital.test>\r\nTo: <bob@hospital.test>\r\nSubject: {marker}\r\n\r\nfirst".encode()
        + smuggled
        + b"MAIL FROM:<alice@hospital.test>\r\nRCPT TO:<bob@hospital.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nhidden\r\n.\r\n"
    )
    replies = _raw_session(
        env.relay.ports["loopback"],
        [b"EHLO c\r\n", b"MAIL FROM:<alice@hospital.test>\r\n", b"RCPT TO:<bob@hospital.test>\r\n", b"DATA\r\n", body, b"QUIT\r\n"],
    )
    assert b"554 5.6.0 bare-line-ending" in replies, replies
    assert not any(marker.encode() in m or b"hidden" in m for m in env.sink.messages())


@pytest.mark.parametrize("path", [b"<", b"<a@[", b"<a@"])
def test_a_broken_path_is_a_syntax_error_not_an_internal_error(env, path):
    replies = _raw_session(
        env.relay.ports["loopback"],
        [b"EHLO c\r\n", b"MAIL FROM:" + path + b"\r\n", b"MAIL FROM:<alice@hospital.test>\r\n", b"RCPT TO:" + path + b"\r\n", b"QUIT\r\n"],
    )
    lines = replies.splitlines()
    assert lines[1].startswith(b"553 5.1.3 "), replies  # not "500 Error: (IndexError) ..."
    assert lines[2].startswith(b"250 "), replies  # the session goes on
    assert lines[3].startswith(b"553 5.1.3 "), replies
    assert b"Error: (" not in replies


def test_starttls_command_injection_is_discarded(env):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", env.relay.ports["submission"]), timeout=10) as raw:
        reader = raw.makefile("rb")
        reader.readline()
        raw.sendall(b"EHLO c\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        raw.sendall(b"STARTTLS\r\nNOOP injected\r\n")  # pipelined in clear text
        assert reader.readline().startswith(b"220")
        with context.wrap_socket(raw) as tls:
            tls.sendall(b"EHLO c\r\n")
            first = tls.makefile("rb").readline()
    assert first.startswith(b"250-relay.test"), first  # not the injected NOOP's "250 OK"


def test_loopback_listener_accepts_local_tools(env):
    with smtplib.SMTP("127.0.0.1", env.relay.ports["loopback"], timeout=10) as client:
        assert client.sendmail("alice@hospital.test", ["bob@hospital.test"], message("alice@hospital.test", ["bob@hospital.test"], subject="marker-loop")) == {}
        code, text = client.docmd("MAIL", "FROM:<alice@hospital.test>")
        assert code == 250
        assert client.docmd("RCPT", "TO:<x@elsewhere.test>")[0] == 550
    _delivered_with(env, "marker-loop")


def test_audit_has_steps_but_never_content(env):
    secret_subject, secret_body = "Résultats IRM patient Dupont", "diagnostic-confidentiel-7731"
    data = message("alice@hospital.test", ["bob@hospital.test"], subject=secret_subject, body=secret_body + "\r\n")
    data = data.replace(secret_subject.encode(), b"=?utf-8?q?R=C3=A9sultats_IRM_patient_Dupont?=")
    result = swaks("--port", str(env.relay.ports["submission"]), "--tls", *_auth(), "--from", "alice@hospital.test", "--to", "bob@hospital.test", data=data)
    assert result.returncode == 0, result.stdout
    queue_id = result.stdout.split("queued as ")[1].split()[0]
    _delivered_with(env, secret_body)
    env.relay.wait_event("removed", queue_id=queue_id)
    log = (env.dir / "audit.log").read_text()
    assert secret_body not in log and "Dupont" not in log and "IRM" not in log and "R=C3=A9sultats" not in log
    steps = {e["event"] for e in env.relay.audit_lines if e.get("queue_id") == queue_id}
    assert {"queued", "done", "attempt", "removed"} <= steps
    tls = env.relay.events("tls", listener="submission")
    assert tls and tls[-1]["version"] in ("TLSv1.2", "TLSv1.3") and tls[-1]["client_certificate"] is False
    assert env.relay.events("connect", listener="submission") and env.relay.events("auth", success=True)
    done = [e for e in env.relay.events("done") if e.get("queue_id") == queue_id][0]
    assert done["code"] == "unsigned" and done["smime"] == "none" and done["message_id"]


def test_metrics_endpoint_counts_decisions_attempts_and_handshakes(env):
    import urllib.request

    test_unsigned_refused_when_signature_required_unless_exempt(env)  # one refusal, one acceptance at least
    env.relay.wait_event("removed")
    with urllib.request.urlopen(f"http://127.0.0.1:{env.relay.ports['metrics']}/metrics", timeout=10) as response:
        text = response.read().decode()

    def value(prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    assert value('relay_messages_total{outcome="refused",reason="unsigned"}') >= 1
    assert value('relay_messages_total{outcome="accepted",reason="ok"}') >= 1
    assert value('relay_delivery_attempts_total{result="delivered"}') >= 1
    assert value('relay_tls_handshakes_total{listener="submission"') >= 1
    assert value("relay_verification_seconds_count") >= 2
    with urllib.request.urlopen(f"http://127.0.0.1:{env.relay.ports['metrics']}/readyz", timeout=10) as response:
        assert response.status == 200


def test_sighup_reloads_the_users_file(env):
    add_user(env.dir / "relay.toml", "late@hospital.test", PASSWORD)
    with _tls_client(env) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("late@hospital.test", PASSWORD)
    reloads = len(env.relay.events("reloaded") + env.relay.events("reload-unchanged"))
    env.relay.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(env.relay.events("reloaded") + env.relay.events("reload-unchanged")) != reloads)
    with _tls_client(env) as client:
        assert client.login("late@hospital.test", PASSWORD)[0] == 235


def test_forged_results_claiming_the_relay_are_stripped(env):
    data = message("alice@hospital.test", ["bob@hospital.test"], subject="marker-forged-results")
    forged = b"Authentication-Results: relay.test; smime=pass smime.signer=chef@hospital.test\r\n"
    result = swaks(
        "--port", str(env.relay.ports["submission"]), "--tls", *_auth(), "--from", "alice@hospital.test",
        "--to", "bob@hospital.test", data=forged + data,
    )
    assert "<~  250 2.0.0 OK queued as " in result.stdout, result.stdout
    delivered = _delivered_with(env, "marker-forged-results")
    assert b"chef@hospital.test" not in delivered
    assert delivered.count(b"Authentication-Results: relay.test;") == 1
