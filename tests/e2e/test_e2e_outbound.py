"""Signing on behalf: a hospital application submits unsigned mail, the relay signs it with the
organisation key held in a SoftHSM2 token and DKIM-signs it; openssl, gpgsm and the DKIM
verifier accept what the next hop receives. A token that refuses the login costs a 451,
never the message.
"""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from relay import devpki
from relay.dkim import DkimStatus, dns_record, load_key, static_resolver, verify_dkim
from tests.e2e.crypto_support import TokenRelay, append, delivered, gpgsm_verify, keys_section, make_token, submit
from tests.keys.keys_support import openssl_verify, split_signed
from tests.smtp.helpers import Sink, add_user, make_pki, service_toml, write_spec

DOMAIN = "hopital-test.mssante.fr"
APP = f"dpi@{DOMAIN}"  # the hospital information system's submission account
OTHER = f"secretariat@{DOMAIN}"  # a submitter the policy does not sign for
DOCTOR = "dr.martin@medecin.mssante.fr"
PASSWORD = "app-password-1"
KEY_LABEL = "org-sign"
SELECTOR = "relay2026"


def _message(sender: str, marker: str) -> bytes:
    return (
        f"From: DPI <{sender}>\r\nTo: <{DOCTOR}>\r\nSubject: Compte rendu {marker}\r\n"
        f"Date: Mon, 01 Jun 2026 09:30:00 +0000\r\nMessage-ID: <{marker}@{DOMAIN}>\r\nX-MSS-CODECDA: 11490-0\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"Resultats normaux ({marker}). R\u00e9sum\u00e9 joint.\r\n"
    ).encode()


def _spec(d, tls, pki, sink_port: int) -> dict:
    hop = {"host": "127.0.0.1", "port": sink_port, "tls": "none"}
    (d / "igc-root.pem").write_bytes(pki.root.cert_pem)
    (d / "igc-cas.pem").write_bytes(devpki.pem_bundle([pki.structures.cert, pki.personnes.cert]))
    policy = {"require_signature": True, "unsigned_senders": [APP], "sign_on_behalf": True}
    return {
        "bundles": [
            {"name": "tls", "purpose": "tls", "anchors": [str(tls.path("root.pem"))]},
            {"name": "smime", "purpose": "smime", "anchors": [str(d / "igc-root.pem")], "intermediates": [str(d / "igc-cas.pem")]},
        ],
        "domains": [
            {"name": DOMAIN, "local": True, "next_hop": hop, "policy": policy},
            {"name": "medecin.mssante.fr", "local": False, "next_hop": hop},
        ],
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory, pki):
    d = tmp_path_factory.mktemp("outbound")
    tls = make_pki(d / "tls")
    organisation = pki.organisation(emails=[APP])
    token = make_token(d / "hsm", "relay-org", KEY_LABEL, organisation, [pki.structures.cert, pki.root.cert])
    (d / "ca.pem").write_bytes(devpki.pem_bundle([pki.root.cert, pki.structures.cert]))
    (d / "dkim.pem").write_bytes(
        devpki.new_key("rsa2048").private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    sink = Sink(d / "sink", 0).start()
    write_spec(d / "spec.json", _spec(d, tls, pki, sink.port))
    config = service_toml(d, tls, listeners=("submission",))
    append(config, keys_section(token, sign_label=KEY_LABEL) + f'[dkim."{DOMAIN}"]\nselector = "{SELECTOR}"\nkey_file = "dkim.pem"\n')
    for user in (APP, OTHER):
        add_user(config, user, PASSWORD)
    relay = TokenRelay(config, d / "spec.json").with_token(token).start()
    yield type("Env", (), {"relay": relay, "sink": sink, "dir": d, "tls": tls, "pki": pki, "token": token, "org": organisation})
    relay.stop()
    sink.stop()


def _send(env, user: str, marker: str) -> tuple[int, bytes]:
    return submit(env.relay.ports["submission"], env.tls.path("root.pem"), user, PASSWORD, [DOCTOR], _message(user, marker))


def test_unsigned_application_mail_leaves_signed_by_the_organisation_and_dkim_signed(env):
    code, text = _send(env, APP, "marker-on-behalf")
    assert code == 250, text
    envelope, message = delivered(env.sink.wait_for_marker("marker-on-behalf"))
    assert envelope["from"] == APP and envelope["to"] == [DOCTOR]
    assert b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"' in message
    assert b"X-MSS-CODECDA: 11490-0" in message  # MSSanté fields stay on the outer message

    verified = openssl_verify(message, env.dir / "ca.pem")
    assert verified.returncode == 0, verified.stderr.decode()
    parts = split_signed(message)
    gpgsm = gpgsm_verify(env.pki.root.cert, env.dir / "ca.pem", parts.signature, parts.content)
    assert gpgsm.returncode == 0, gpgsm.stderr.decode()
    content = subprocess.run(
        ["openssl", "cms", "-verify", "-CAfile", str(env.dir / "ca.pem")], input=message, capture_output=True, check=True
    ).stdout
    # The 8-bit body was made quoted-printable before signing, so no hop can alter it.
    assert b"Content-Transfer-Encoding: quoted-printable" in content and b"R=C3=A9sum=C3=A9 joint" in content

    key = load_key(DOMAIN, SELECTOR, env.dir / "dkim.pem")
    results = verify_dkim(message, static_resolver({f"{SELECTOR}._domainkey.{DOMAIN}": dns_record(key)}))
    assert [(r.status, r.domain) for r in results] == [(DkimStatus.PASS, DOMAIN)]

    queue_id = text.decode().split("queued as ")[1]
    done = env.relay.wait_event("done", queue_id=queue_id)
    assert done["signed_on_behalf"] == env.org.cert.fingerprint(hashes.SHA256()).hex()
    assert done["dkim"] == DOMAIN


def test_a_submitter_the_policy_does_not_sign_for_is_refused_unsigned(env):
    code, text = _send(env, OTHER, "marker-not-listed")
    assert code == 550 and text.startswith(b"5.7.1 unsigned:"), text


def test_a_refused_login_answers_451_and_a_corrected_pin_signs_again(env, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text("0000-wrong\n")
    pin_file.chmod(0o600)
    config = service_toml(tmp_path, env.tls, listeners=("submission",))
    section = keys_section(env.token, sign_label=KEY_LABEL, login_retry=0).replace(str(env.token.pin_file), str(pin_file))
    append(config, section)
    add_user(config, APP, PASSWORD)
    relay = TokenRelay(config, env.dir / "spec.json").with_token(env.token).start()
    try:
        assert relay.wait_event("keys-unavailable")["code"] == "pin-incorrect"
        code, text = submit(relay.ports["submission"], env.tls.path("root.pem"), APP, PASSWORD, [DOCTOR], _message(APP, "marker-wrong-pin"))
        assert code == 451 and text.startswith(b"4.3.0 key-unavailable:"), text
        assert b"pin-incorrect" in text and not relay.events("queued")
        pin_file.write_text(env.token.pin_file.read_text())
        code, text = submit(relay.ports["submission"], env.tls.path("root.pem"), APP, PASSWORD, [DOCTOR], _message(APP, "marker-pin-fixed"))
        assert code == 250, text
        _, message = delivered(env.sink.wait_for_marker("marker-pin-fixed"))
        assert openssl_verify(message, env.dir / "ca.pem").returncode == 0
    finally:
        relay.stop()
    assert relay.proc is not None and relay.proc.returncode == 0  # stopped cleanly: the token errors crashed nothing


def test_a_token_gone_while_serving_answers_451_and_the_service_goes_on(env, tmp_path):
    token = make_token(tmp_path / "hsm", "relay-lost", KEY_LABEL, env.org, [env.pki.structures.cert, env.pki.root.cert])
    config = service_toml(tmp_path, env.tls, listeners=("submission",))
    append(config, keys_section(token, sign_label=KEY_LABEL, login_retry=0))
    add_user(config, APP, PASSWORD)
    relay = TokenRelay(config, env.dir / "spec.json").with_token(token).start()
    root = env.tls.path("root.pem")
    try:
        assert relay.wait_event("keys-ready")
        assert submit(relay.ports["submission"], root, APP, PASSWORD, [DOCTOR], _message(APP, "marker-before-loss"))[0] == 250
        deleted = subprocess.run(["softhsm2-util", "--delete-token", "--token", token.label], env=token.env(), capture_output=True)
        assert deleted.returncode == 0, deleted.stderr
        code, text = submit(relay.ports["submission"], root, APP, PASSWORD, [DOCTOR], _message(APP, "marker-after-loss"))
        assert code == 451 and text.startswith(b"4.3.0 key-unavailable:"), text
        assert b"(session-lost)" in text  # the token pool re-logged in once, then gave up
        assert relay.events("queued", message_id=f"<marker-before-loss@{DOMAIN}>")
        assert not relay.events("queued", message_id=f"<marker-after-loss@{DOMAIN}>")
    finally:
        relay.stop()
    assert relay.proc is not None and relay.proc.returncode == 0
