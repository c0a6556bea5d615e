"""[recipients]: encryption certificates loaded from the trust directory, indexed by their
rfc822Name addresses, checked against the signer bundles of each address's domain."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from cryptography.hazmat.primitives import serialization

from relay import devpki
from relay.core.snapshot import EncryptMode
from relay.trust.loader import ConfigError, load_directory

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
PEER = "peer.test"


@pytest.fixture(scope="module")
def pki():
    ca = devpki.make_ca("AC RECIPIENTS")
    stranger_ca = devpki.make_ca("AC STRANGER")
    return ca, stranger_ca


def _leaf(issuer, email: str, **kwargs) -> devpki.Issued:
    kwargs.setdefault("key_usage", "encrypt")
    return devpki.make_leaf(issuer, devpki.direct_subject(email), emails=[email], **kwargs)


def _directory(tmp_path: Path, ca: devpki.Issued, certs: dict[str, bytes], policy: str = 'encrypt = "required"\nencryption_aead = true') -> Path:
    trust = tmp_path / "trust"
    (trust / "recipients").mkdir(parents=True)
    (trust / "ca.pem").write_bytes(ca.cert_pem)
    (trust / "main.toml").write_text(
        '[bundle.smime]\nanchors = ["ca.pem"]\nrevocation = "where-available"\n'
        f'[domain."{PEER}"]\nsigner_bundles = ["smime"]\n[domain."{PEER}".policy]\n{policy}\n'
        '[recipients]\ndirectory = "recipients"\n'
    )
    for name, pem in certs.items():
        (trust / "recipients" / name).write_bytes(pem)
    config = tmp_path / "relay.toml"
    config.write_text('trust_dir = "trust"\n')
    return config


def test_certificates_are_indexed_by_their_addresses(tmp_path, pki):
    ca, _ = pki
    alice = _leaf(ca, f"Alice@{PEER.upper()}")
    both = _leaf(ca, f"bob@{PEER}", key_usage="both")
    loaded = load_directory(_directory(tmp_path, ca, {"alice.pem": alice.cert_pem, "bob.pem": both.cert_pem}), NOW)
    snapshot = loaded.snapshot
    assert snapshot.encryption_certificate(f"Alice@{PEER}") == alice.cert
    assert snapshot.encryption_certificate(f"bob@{PEER}") == both.cert
    assert snapshot.encryption_certificate(f"carol@{PEER}") is None
    policy = snapshot.route(f"bob@{PEER}").policy
    assert policy.encrypt is EncryptMode.REQUIRED and policy.encryption_aead
    assert not loaded.warnings


def test_an_expired_certificate_is_a_warning_and_unused(tmp_path, pki):
    ca, _ = pki
    old = _leaf(ca, f"old@{PEER}", not_after=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    loaded = load_directory(_directory(tmp_path, ca, {"old.pem": old.cert_pem}), NOW)
    assert loaded.snapshot.encryption_certificate(f"old@{PEER}") is None
    assert any("old.pem" in w and "not used" in w for w in loaded.warnings)


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda ca, s: _leaf(ca, f"x@{PEER}", key_usage="sign").cert_pem, "keyUsage lacks keyEncipherment"),
        (lambda ca, s: _leaf(ca, f"x@{PEER}", key_usage=None).cert_pem, "no keyUsage: keyEncipherment is required"),
        (lambda ca, s: _leaf(ca, f"x@{PEER}", key_kind="p256").cert_pem, "only RSA key transport"),
        (lambda ca, s: _leaf(s, f"x@{PEER}").cert_pem, "no path to an anchor of its domain's signer bundles (smime)"),
        (lambda ca, s: _leaf(ca, "x@unknown.test").cert_pem, "x@unknown.test: no domain rule"),
        (lambda ca, s: devpki.make_leaf(ca, devpki.direct_subject("x"), key_usage="encrypt").cert_pem, "no rfc822Name"),
        (lambda ca, s: b"not a certificate\n", "not a PEM certificate"),
    ],
)
def test_unusable_certificates_are_errors_naming_the_file(tmp_path, pki, make, error):
    ca, stranger = pki
    with pytest.raises(ConfigError) as caught:
        load_directory(_directory(tmp_path, ca, {"bad.pem": make(ca, stranger)}), NOW)
    assert "bad.pem" in str(caught.value) and error in str(caught.value)


def test_two_certificates_for_one_address_are_an_error(tmp_path, pki):
    ca, _ = pki
    one, two = _leaf(ca, f"dup@{PEER}"), _leaf(ca, f"dup@{PEER}")
    with pytest.raises(ConfigError, match="already has an encryption certificate in a.pem"):
        load_directory(_directory(tmp_path, ca, {"a.pem": one.cert_pem, "b.pem": two.cert_pem}), NOW)


def test_an_unknown_encrypt_value_is_an_error(tmp_path, pki):
    ca, _ = pki
    with pytest.raises(ConfigError, match="expected one of never, when-possible, required"):
        load_directory(_directory(tmp_path, ca, {}, policy='encrypt = "always"'), NOW)


def test_route_and_check_show_the_policy_and_the_certificate(tmp_path, pki):
    ca, _ = pki
    config = _directory(tmp_path, ca, {"alice.pem": _leaf(ca, f"alice@{PEER}").cert_pem})

    def relay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True, text=True, timeout=60)

    shown = relay("route", "--config", str(config), f"alice@{PEER}")
    assert "encrypt required (AES-256-GCM)" in shown.stdout, shown.stderr
    assert "encryption:  certificate" in shown.stdout
    missing = relay("route", "--config", str(config), f"carol@{PEER}")
    assert "encryption:  no certificate in the directory" in missing.stdout
    checked = relay("check", "--config", str(config))
    assert checked.returncode == 0 and "encryption certificates: 1 address(es)" in checked.stdout
    (config.parent / "trust" / "recipients" / "bad.pem").write_bytes(_leaf(ca, f"bad@{PEER}", key_usage="sign").cert_pem)
    checked = relay("check", "--config", str(config))
    assert checked.returncode != 0 and "keyEncipherment" in checked.stdout + checked.stderr


def test_a_certificate_with_a_duplicated_extension_is_an_error_naming_the_file(tmp_path, pki):
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509

    ca, _ = pki
    parsed = asn1_x509.Certificate.load(_leaf(ca, f"dana@{PEER}").cert.public_bytes(serialization.Encoding.DER))
    extensions = parsed["tbs_certificate"]["extensions"]
    extensions.append(extensions[0])  # the same extension twice: RFC 5280 §4.2 forbids it
    broken = asn1_pem.armor("CERTIFICATE", parsed.dump(force=True))
    with pytest.raises(ConfigError) as caught:
        load_directory(_directory(tmp_path, ca, {"dup.pem": broken}), NOW)
    assert "dup.pem" in str(caught.value) and "extension" in str(caught.value)
