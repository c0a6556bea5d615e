"""`relay keys` as an operator runs it: real processes against the SoftHSM2 token set."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from keys_support import EC_TOKEN, KEY_LABEL, MESSAGE, PIN_ENV, RSA_TOKEN, SPARE_TOKEN, openssl_verify, relay_keys
from relay import devpki


def _no_traceback(done) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err
    return err


def test_list_shows_tokens_keys_and_certificates(hsm):
    done = relay_keys(hsm.env, "list", "--token", RSA_TOKEN, "--pin-env", PIN_ENV, check=True)
    out = done.stdout.decode()
    for token in (RSA_TOKEN, EC_TOKEN, SPARE_TOKEN):
        assert f"token {token!r}" in out
    assert f"private-key {KEY_LABEL!r}" in out and "RSA-2048" in out
    assert f"certificate {KEY_LABEL!r}" in out and "CN=hopital-test.mssante.fr" in out
    assert f"certificate '{KEY_LABEL}.ca1'" in out and "CN=IGC-SANTE TEST ORGANISATIONS" in out


def test_list_without_a_pin_shows_only_public_objects(hsm):
    out = relay_keys(hsm.env, "list", "--token", EC_TOKEN, check=True).stdout.decode()
    assert f"certificate {KEY_LABEL!r}" in out
    assert "private-key" not in out


def test_sign_command_output_verifies_with_openssl(hsm, pki, tmp_path):
    unsigned = tmp_path / "unsigned.eml"
    unsigned.write_bytes(MESSAGE)
    out = tmp_path / "signed.eml"
    relay_keys(hsm.env, "sign", "--token", EC_TOKEN, "--pin-env", PIN_ENV, "--label", KEY_LABEL, "--out", str(out), str(unsigned), check=True)
    assert out.stat().st_mode & 0o077 == 0
    verified = openssl_verify(out.read_bytes(), pki.ca_file)
    assert verified.returncode == 0, verified.stderr.decode()


def test_import_then_sign_from_a_fresh_label(hsm, pki, tmp_path):
    leaf = devpki.make_leaf(pki.ca, devpki.organisation_subject("labo.mssante.fr", "1750000002", "LABO TEST"))
    p12 = tmp_path / "labo.p12"
    p12.write_bytes(leaf.pkcs12(None, [pki.ca.cert, pki.root.cert]))
    done = relay_keys(hsm.env, "import", "--token", SPARE_TOKEN, "--pin-env", PIN_ENV, "--p12", str(p12), "--label", "labo-2026", check=True)
    assert "imported 'labo-2026'" in done.stdout.decode() and "1 CA certificate" in done.stdout.decode()
    again = relay_keys(hsm.env, "import", "--token", SPARE_TOKEN, "--pin-env", PIN_ENV, "--p12", str(p12), "--label", "labo-2026")
    assert again.returncode == 2 and "import-failed" in _no_traceback(again) and "already exist" in again.stderr.decode()
    unsigned = tmp_path / "unsigned.eml"
    unsigned.write_bytes(MESSAGE)
    signed = relay_keys(hsm.env, "sign", "--token", SPARE_TOKEN, "--pin-env", PIN_ENV, "--label", "labo-2026", str(unsigned), check=True)
    assert openssl_verify(signed.stdout, pki.ca_file).returncode == 0


@pytest.mark.parametrize(
    "args, code",
    [
        (("list", "--token", RSA_TOKEN, "--pin-env", "RELAY_TEST_WRONG"), "pin-incorrect"),
        (("list", "--token", "absent-token", "--pin-env", PIN_ENV), "token-not-found"),
        (("list", "--module", "/nonexistent/libvendor.so"), "module-not-found"),
        (("sign", "--token", RSA_TOKEN, "--pin-env", PIN_ENV, "--label", "absent-key", "/dev/null"), "key-not-found"),
        (("list", "--token", RSA_TOKEN, "--pin-env", "RELAY_TEST_UNSET_PIN"), "pin-unavailable"),
    ],
)
def test_operator_errors_are_one_line_with_a_stable_code(hsm, args, code):
    done = relay_keys({**hsm.env, "RELAY_TEST_WRONG": "0000"}, *args)
    assert done.returncode == 2
    err = _no_traceback(done)
    assert err.startswith("relay keys: " + code), err
    assert len(err.strip().splitlines()) == 1


def test_a_readable_pin_file_is_refused(hsm, tmp_path):
    pin = tmp_path / "pin"
    pin.write_text("4721-relay\n")
    pin.chmod(0o644)
    done = relay_keys(hsm.env, "list", "--token", RSA_TOKEN, "--pin-file", str(pin))
    assert done.returncode == 2 and "pin-file-permissions" in _no_traceback(done)
    pin.chmod(0o600)
    assert relay_keys(hsm.env, "list", "--token", RSA_TOKEN, "--pin-file", str(pin)).returncode == 0


def test_a_wrong_pkcs12_password_is_a_clear_error(hsm, pki, tmp_path):
    p12 = tmp_path / "x.p12"
    p12.write_bytes(pki.rsa.pkcs12(b"right", [pki.ca.cert]))
    done = relay_keys(
        {**hsm.env, "P12_PASSWORD": "wrong"}, "import", "--token", SPARE_TOKEN, "--pin-env", PIN_ENV,
        "--p12", str(p12), "--p12-password-env", "P12_PASSWORD", "--label", "never",
    )
    assert done.returncode == 2 and "import-failed" in _no_traceback(done)
    not_p12 = tmp_path / "garbage.p12"
    not_p12.write_bytes(b"\x30\x03\x02\x01\x00 not a pkcs12")
    done = relay_keys(hsm.env, "import", "--token", SPARE_TOKEN, "--pin-env", PIN_ENV, "--p12", str(not_p12), "--label", "never")
    assert done.returncode == 2 and "import-failed" in _no_traceback(done)


def test_relay_verify_accepts_what_relay_keys_signed(hsm, pki, tmp_path):
    unsigned = tmp_path / "unsigned.eml"
    unsigned.write_bytes(MESSAGE)
    signed = tmp_path / "signed.eml"
    relay_keys(hsm.env, "sign", "--token", RSA_TOKEN, "--pin-env", PIN_ENV, "--label", KEY_LABEL, "--out", str(signed), str(unsigned), check=True)
    files = {}
    for name, data in (("root.pem", pki.root.cert_pem), ("ca.pem", pki.ca.cert_pem),
                       ("root.crl", devpki.crl_pem(devpki.make_crl(pki.root))), ("ca.crl", devpki.crl_pem(devpki.make_crl(pki.ca)))):
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "relay", "verify", "--anchor", str(files["root.pem"]), "--intermediate", str(files["ca.pem"]),
         "--crl", str(files["root.crl"]), "--crl", str(files["ca.crl"]), "--no-require-professional", "--allow-org-certs",
         "--json", str(signed)],
        env=hsm.env, capture_output=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert json.loads(done.stdout)["code"] == "ok"
