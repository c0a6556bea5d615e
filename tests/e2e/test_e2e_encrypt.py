"""Outbound encryption end to end: `relay serve --config` with a trust directory holding the
recipients' encryption certificates ([recipients]) and their domains' policies; the sink
process receives the envelopes, `openssl cms -decrypt` opens them with each recipient's key
(AES-256-GCM AuthEnvelopedData and AES-256-CBC EnvelopedData) and `openssl cms -verify`
checks the practitioner's signature inside. Also sign-on-behalf (token key), then encryption,
then DKIM over the envelope; the refusals of "required"; and the decryption-failed reply for
an inbound envelope whose GCM tag does not verify.
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from relay import devpki
from relay.core.smime_encrypt import ContentCipher, Recipient, encrypt_message
from cryptography.hazmat.primitives import serialization

from relay.dkim import DkimStatus, dns_record, load_key, static_resolver, verify_dkim
from tests.crypt.crypt_support import break_mac
from tests.e2e.crypto_support import append, crlf, delivered, keys_section, make_token, submit
from tests.smtp.helpers import ROOT, Sink, add_user, make_pki, read_ready, service_toml, stop, wait_until

DOCTOR = "jean.dupont@medecin.mssante.fr"
ALICE = "alice@peer.test"  # encrypt = "required", receiver opens AES-GCM
BOB = "bob@clinic.test"  # encrypt = "when-possible", AES-CBC only
CAROL = "carol@peer.test"  # required, no certificate
DAVE = "dave@clinic.test"  # when-possible, no certificate
STAFF = "cardiologie@hospital.test"  # local, the relay decrypts for it
APP = "dpi@hospital.test"  # a submitting application the relay signs for
PASSWORD = "app-password-1"


def _cms(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", "cms", *args], input=data, capture_output=True, timeout=30)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _trust(d: Path, pki, sink_port: int) -> None:
    trust = d / "trust"
    (trust / "recipients").mkdir(parents=True)
    _write(trust / "igc-root.pem", pki.root.cert_pem)
    _write(trust / "igc-cas.pem", devpki.pem_bundle([pki.structures.cert, pki.personnes.cert]))
    hop = f'next_hop = {{ url = "smtp://127.0.0.1:{sink_port}", tls = "none" }}\nsigner_bundles = ["smime"]\n'
    (trust / "main.toml").write_text(
        '[bundle.smime]\nanchors = ["igc-root.pem"]\nintermediates = ["igc-cas.pem"]\nrevocation = "where-available"\n'
        f'[domain."medecin.mssante.fr"]\n{hop}'
        f'[domain."hospital.test"]\nlocal = true\n{hop}'
        f'[domain."hospital.test".policy]\nunsigned_senders = ["{APP}"]\nsign_on_behalf = true\n'
        f'[domain."peer.test"]\n{hop}[domain."peer.test".policy]\nencrypt = "required"\nencryption_aead = true\n'
        f'[domain."clinic.test"]\n{hop}[domain."clinic.test".policy]\nencrypt = "when-possible"\n'
        '[recipients]\ndirectory = "recipients"\n'
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory, pki):
    d = tmp_path_factory.mktemp("encrypt")
    tls = make_pki(d / "tls")
    sink = Sink(d / "sink", 0).start()
    _trust(d, pki, sink.port)
    keys = {}
    for address in (ALICE, BOB):
        leaf = pki.organisation(emails=[address], dns_name=None, key_usage="encrypt")
        _write(d / "trust" / "recipients" / f"{address.split('@')[0]}.pem", leaf.cert_pem)
        keys[address] = (_write(d / f"{address}.pem", leaf.cert_pem), _write(d / f"{address}.key", leaf.key_pem))
    org = pki.organisation(emails=[STAFF], dns_name=None, key_usage="both")
    _write(d / "all-cas.pem", devpki.pem_bundle([pki.root.cert, pki.structures.cert, pki.personnes.cert]))
    _write(d / "org.pem", org.cert_pem)
    _write(d / "org.key", org.key_pem)
    (d / "org.key").chmod(0o600)
    doctor = pki.practitioner(email=DOCTOR)
    signer = (_write(d / "doctor.pem", doctor.cert_pem), _write(d / "doctor.key", doctor.key_pem))
    config = service_toml(d, tls, listeners=("loopback",))
    config.write_text('trust_dir = "trust"\n' + config.read_text())
    append(config, '[keys]\ndecrypt_key_file = "org.key"\ndecrypt_cert_file = "org.pem"\n')
    proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        port = read_ready(proc)["loopback"][1]
        yield type("Env", (), {"port": port, "sink": sink, "dir": d, "keys": keys, "signer": signer, "pki": pki, "org": org})
    finally:
        stop(proc)
        sink.stop()


def _signed(env, recipients: list[str], marker: str) -> bytes:
    """A practitioner-signed message as openssl writes it (RFC 5322 fields outside the signature)."""
    part = f"Content-Type: text/plain; charset=us-ascii\r\n\r\nCompte rendu {marker}.\r\n".encode()
    signed = _cms(
        "-sign", "-signer", env.signer[0], "-inkey", env.signer[1], "-crlfeol", "-binary",
        "-from", DOCTOR, "-to", ", ".join(recipients), "-subject", f"Resultats {marker}", data=part,
    )
    assert signed.returncode == 0, signed.stderr
    return crlf(signed.stdout)


def _send(env, recipients: list[str], data: bytes) -> tuple[int, bytes, list[int]]:
    with smtplib.SMTP("127.0.0.1", env.port, timeout=30) as client:
        client.ehlo("app.medecin.test")
        client.mail(DOCTOR)
        rcpt_codes = [client.rcpt(r)[0] for r in recipients]
        if not any(code == 250 for code in rcpt_codes):
            return 0, b"", rcpt_codes
        code, text = client.data(data)
        return code, text, rcpt_codes


def _find(env, address: str, marker: str) -> bytes | None:
    for raw in env.sink.messages():
        envelope, message = delivered(raw)
        if address in envelope["to"] and f"Resultats {marker}".encode() in message:
            return message
    return None


def _poll(env, address: str, marker: str) -> bytes:
    wait_until(lambda: _find(env, address, marker) is not None)
    message = _find(env, address, marker)
    assert message is not None, f"no message {marker} for {address}"
    return message


def _open_and_verify(env, message: bytes, address: str, marker: str) -> bytes:
    cert, key = env.keys[address]
    opened = _cms("-decrypt", "-recip", cert, "-inkey", key, data=message)
    assert opened.returncode == 0, opened.stderr
    inner = opened.stdout
    assert b"multipart/signed" in inner and f"Compte rendu {marker}".encode() not in message
    # OpenSSL 3.0 builds no chain from -certfile: anchors and intermediates go in -CAfile
    checked = _cms("-verify", "-CAfile", str(env.dir / "all-cas.pem"), "-purpose", "any", data=inner)
    assert checked.returncode == 0, checked.stderr
    assert f"Compte rendu {marker}.".encode() in checked.stdout
    return inner


def test_a_required_recipient_with_an_aead_receiver_gets_aes_gcm(env):
    code, text, _ = _send(env, [ALICE], _signed(env, [ALICE], "marker-gcm"))
    assert code == 250, text
    message = _poll(env, ALICE, "marker-gcm")
    assert b"smime-type=authEnveloped-data" in message
    assert b"Subject: Resultats marker-gcm" in message  # RFC 5322 fields stay outside for the transport
    _open_and_verify(env, message, ALICE, "marker-gcm")


def test_a_when_possible_recipient_gets_aes_cbc(env):
    code, text, _ = _send(env, [BOB], _signed(env, [BOB], "marker-cbc"))
    assert code == 250, text
    message = _poll(env, BOB, "marker-cbc")
    assert b"smime-type=enveloped-data" in message
    _open_and_verify(env, message, BOB, "marker-cbc")


def test_one_envelope_opens_for_every_recipient_and_cbc_unless_all_take_gcm(env):
    code, text, _ = _send(env, [ALICE, BOB], _signed(env, [ALICE, BOB], "marker-both"))
    assert code == 250, text
    for address in (ALICE, BOB):
        message = _poll(env, address, "marker-both")
        assert b"smime-type=enveloped-data" in message
        _open_and_verify(env, message, address, "marker-both")


def test_a_required_recipient_without_a_certificate_is_refused_at_rcpt(env):
    _, _, codes = _send(env, [CAROL], b"")
    assert codes == [550]
    with smtplib.SMTP("127.0.0.1", env.port, timeout=30) as client:
        client.ehlo("app.medecin.test")
        client.mail(DOCTOR)
        code, text = client.rcpt(CAROL)
    assert code == 550 and text.startswith(b"5.7.1 encryption-required:"), text


def test_when_possible_without_a_certificate_leaves_signed_in_clear(env):
    code, text, _ = _send(env, [DAVE], _signed(env, [DAVE], "marker-clear"))
    assert code == 250, text
    message = _poll(env, DAVE, "marker-clear")
    assert b"pkcs7-mime" not in message and b"Compte rendu marker-clear." in message


def test_a_required_recipient_sharing_a_message_with_one_without_certificate_refuses_it(env):
    code, text, codes = _send(env, [ALICE, DAVE], _signed(env, [ALICE, DAVE], "marker-mixed"))
    assert codes == [250, 250]
    assert code == 550 and text.startswith(b"5.7.1 encryption-required:"), text


def test_an_inbound_envelope_with_a_broken_gcm_tag_is_decryption_failed(env):
    signed = _signed(env, [STAFF], "marker-tag")
    encrypted = encrypt_message(signed, [Recipient(env.org.cert)], ContentCipher.AES256_GCM)
    broken = break_mac(encrypted)  # the last byte of the MAC
    code, text, _ = _send(env, [STAFF], broken)
    assert code == 554 and text.startswith(b"5.7.5 decryption-failed:"), text


@pytest.fixture(scope="module")
def behalf(env):
    """A second `relay serve` on the same trust directory that signs for APP with a token key and DKIM-signs."""
    d = env.dir / "behalf"
    d.mkdir()
    tls = make_pki(d / "tls")
    app = env.pki.organisation(emails=[APP], dns_name=None)
    token = make_token(d / "hsm", "relay-org", "org-sign", app, [env.pki.structures.cert, env.pki.root.cert])
    _write(d / "dkim.pem", devpki.new_key("rsa2048").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    config = service_toml(d, tls, listeners=("submission",))
    config.write_text(f'trust_dir = "{env.dir / "trust"}"\n' + config.read_text())
    append(config, keys_section(token, sign_label="org-sign") + '[dkim."hospital.test"]\nselector = "s1"\nkey_file = "dkim.pem"\n')
    add_user(config, APP, PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=token.env(),
    )
    try:
        port = read_ready(proc)["submission"][1]
        yield type("Behalf", (), {"port": port, "root": tls.path("root.pem"), "dkim": load_key("hospital.test", "s1", d / "dkim.pem")})
    finally:
        stop(proc)


def test_signed_on_behalf_then_encrypted_then_dkim_signed(env, behalf):
    data = (
        f"From: <{APP}>\r\nTo: <{ALICE}>\r\nSubject: Resultats marker-behalf\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\nCompte rendu marker-behalf.\r\n"
    ).encode()
    code, text = submit(behalf.port, behalf.root, APP, PASSWORD, [ALICE], data)
    assert code == 250, text
    message = _poll(env, ALICE, "marker-behalf")
    assert message.index(b"DKIM-Signature:") < message.index(b"smime-type=authEnveloped-data")
    results = verify_dkim(message, static_resolver({"s1._domainkey.hospital.test": dns_record(behalf.dkim)}))
    assert [r.status for r in results] == [DkimStatus.PASS]  # DKIM covers the envelope as it travels
    _open_and_verify(env, message, ALICE, "marker-behalf")  # the organisation's signature inside

