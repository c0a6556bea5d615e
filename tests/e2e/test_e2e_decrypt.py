"""Inbound decryption: mail encrypted by `openssl cms -encrypt` to the hospital's organisation
certificate is opened with the key in a SoftHSM2 token (or a key file), its inner signature is
verified as usual, and the clean rebuilt message is what the hospital system receives.
"""

from __future__ import annotations

import smtplib
import subprocess
from pathlib import Path

import pytest

from relay import devpki
from tests.e2e.crypto_support import TokenRelay, append, crlf, delivered, keys_section, make_token
from tests.smtp.helpers import Relay, Sink, make_pki, service_toml, write_spec

DOMAIN = "hopital-test.mssante.fr"
STAFF = f"cardiologie@{DOMAIN}"
DOCTOR = "jean.dupont@medecin.mssante.fr"
KEY_LABEL = "org-key"


def _openssl(*args: str, data: bytes) -> bytes:
    return subprocess.run(["openssl", "cms", *args], input=data, capture_output=True, check=True).stdout


def _signed_entity(d: Path, pki, marker: str) -> bytes:
    """A multipart/signed entity by the practitioner, as openssl writes it (no RFC 5322 fields)."""
    leaf = pki.practitioner(email=DOCTOR)
    (d / "doctor.pem").write_bytes(leaf.cert_pem)
    (d / "doctor.key").write_bytes(leaf.key_pem)
    part = f"Content-Type: text/plain; charset=us-ascii\r\n\r\nCompte rendu {marker}.\r\n".encode()
    return crlf(_openssl("-sign", "-signer", str(d / "doctor.pem"), "-inkey", str(d / "doctor.key"), "-crlfeol", "-binary", data=part))


def _encrypt(d: Path, entity: bytes, recipient_pem: bytes, marker: str) -> bytes:
    (d / "recipient.pem").write_bytes(recipient_pem)
    encrypted = _openssl(
        "-encrypt", "-aes-256-cbc", "-from", DOCTOR, "-to", STAFF, "-subject", f"Resultats {marker}", str(d / "recipient.pem"),
        data=entity,
    )
    return crlf(encrypted)


def _spec(d: Path, tls, pki, sink_port: int) -> dict:
    hop = {"host": "127.0.0.1", "port": sink_port, "tls": "none"}
    (d / "igc-root.pem").write_bytes(pki.root.cert_pem)
    (d / "igc-cas.pem").write_bytes(devpki.pem_bundle([pki.structures.cert, pki.personnes.cert]))
    return {
        "bundles": [
            {"name": "tls", "purpose": "tls", "anchors": [str(tls.path("root.pem"))]},
            {"name": "smime", "purpose": "smime", "anchors": [str(d / "igc-root.pem")], "intermediates": [str(d / "igc-cas.pem")]},
        ],
        "domains": [
            {"name": DOMAIN, "local": True, "next_hop": hop},
            {"name": "medecin.mssante.fr", "local": False, "next_hop": hop, "policy": {"require_signature": True}},
        ],
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory, pki):
    d = tmp_path_factory.mktemp("decrypt")
    tls = make_pki(d / "tls")
    organisation = pki.organisation(emails=[STAFF], key_usage="both")
    token = make_token(d / "hsm", "relay-org", KEY_LABEL, organisation, [pki.structures.cert, pki.root.cert])
    sink = Sink(d / "sink", 0).start()
    write_spec(d / "spec.json", _spec(d, tls, pki, sink.port))
    config = service_toml(d, tls, listeners=("loopback",))
    append(config, keys_section(token, decrypt_label=KEY_LABEL))
    relay = TokenRelay(config, d / "spec.json").with_token(token).start()
    yield type("Env", (), {"relay": relay, "sink": sink, "dir": d, "tls": tls, "pki": pki, "org": organisation})
    relay.stop()
    sink.stop()


def _send(port: int, data: bytes, recipient: str = STAFF) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mx.medecin.test")
        client.mail(DOCTOR)
        client.rcpt(recipient)
        return client.data(data)


def _check_clean_delivery(sink: Sink, marker: str) -> bytes:
    _, message = delivered(sink.wait_for_marker(f"Compte rendu {marker}."))
    assert b"enveloped-data" not in message and b"pkcs7-mime" not in message
    assert b"Content-Type: multipart/signed" in message
    assert f"smime=pass smime.signer={DOCTOR}".encode() in message
    assert f"Subject: Resultats {marker}".encode() in message
    return message


def test_encrypted_signed_mail_is_decrypted_with_the_token_key_and_verified(env, tmp_path):
    data = _encrypt(tmp_path, _signed_entity(tmp_path, env.pki, "marker-token"), env.org.cert_pem, "marker-token")
    assert b"smime-type=enveloped-data" in data and b"marker-token." not in data
    code, text = _send(env.relay.ports["loopback"], data)
    assert code == 250, text
    _check_clean_delivery(env.sink, "marker-token")
    queue_id = text.decode().split("queued as ")[1]
    done = env.relay.wait_event("done", queue_id=queue_id)
    assert done["decrypted"] == "aes256-cbc" and done["code"] == "ok"


def test_decrypted_content_with_a_bad_inner_signature_is_refused(env, tmp_path):
    entity = _signed_entity(tmp_path, env.pki, "marker-tampered").replace(b"marker-tampered", b"marker-Tampered")
    code, text = _send(env.relay.ports["loopback"], _encrypt(tmp_path, entity, env.org.cert_pem, "marker-tampered"))
    assert code == 550 and text.startswith(b"5.7.7 signature-invalid:"), text


def test_mail_encrypted_to_another_certificate_is_refused(env, tmp_path):
    stranger = env.pki.organisation(emails=[STAFF], key_usage="both", key_kind="rsa2048")
    data = _encrypt(tmp_path, _signed_entity(tmp_path, env.pki, "marker-stranger"), stranger.cert_pem, "marker-stranger")
    code, text = _send(env.relay.ports["loopback"], data)
    assert code == 554 and text.startswith(b"5.6.0 malformed:"), text


def test_an_envelope_inside_a_clear_message_is_refused(env, tmp_path):
    encrypted = _encrypt(tmp_path, _signed_entity(tmp_path, env.pki, "marker-mixed"), env.org.cert_pem, "marker-mixed")
    envelope_part = encrypted[encrypted.index(b"MIME-Version"):].split(b"\r\n", 1)[1]
    mixed = (
        f"From: <{DOCTOR}>\r\nTo: <{STAFF}>\r\nSubject: mixed\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nVoir piece jointe.\r\n--b1\r\n'
    ).encode() + envelope_part + b"\r\n--b1--\r\n"
    code, text = _send(env.relay.ports["loopback"], mixed)
    assert code == 554 and text.startswith(b"5.6.0 malformed: an encrypted part inside a clear message"), text


def test_a_key_file_decrypts_as_well(env, tmp_path):
    (tmp_path / "org.key").write_bytes(env.org.key_pem)
    (tmp_path / "org.key").chmod(0o600)
    (tmp_path / "org.pem").write_bytes(env.org.cert_pem)
    config = service_toml(tmp_path, env.tls, listeners=("loopback",))
    append(config, '[keys]\ndecrypt_key_file = "org.key"\ndecrypt_cert_file = "org.pem"\n')
    relay = Relay(config, env.dir / "spec.json").start()
    try:
        data = _encrypt(tmp_path, _signed_entity(tmp_path, env.pki, "marker-keyfile"), env.org.cert_pem, "marker-keyfile")
        code, text = _send(relay.ports["loopback"], data)
        assert code == 250, text
        _check_clean_delivery(env.sink, "marker-keyfile")
    finally:
        relay.stop()
