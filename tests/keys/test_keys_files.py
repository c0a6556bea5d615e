"""Keys from PEM files: the software provider behind the same SigningKey interface."""

from __future__ import annotations

import pytest

from keys_support import MESSAGE, SIGNING_TIME, openssl_verify
from relay import devpki
from relay.core.smime_sign import SignatureScheme, sign_message
from relay.keys.errors import KeyErrorCode, KeyStoreError
from relay.keys.software import load_file_key


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind, scheme", [("rsa", SignatureScheme.RSA_PKCS1V15), ("ec", SignatureScheme.ECDSA)])
def test_pem_files_sign_like_the_token(pki, tmp_path, kind, scheme):
    issued = getattr(pki, kind)
    key = load_file_key(
        _write(tmp_path, "key.pem", issued.key_pem),
        _write(tmp_path, "cert.pem", devpki.pem_bundle([issued.cert, pki.ca.cert])),  # leaf then chain
    )
    assert key.scheme is scheme and key.chain == (pki.ca.cert,)
    done = openssl_verify(sign_message(MESSAGE, key, SIGNING_TIME), pki.ca_file)
    assert done.returncode == 0, done.stderr.decode()


def test_a_key_file_that_is_not_the_certificates_key_is_refused(pki, tmp_path):
    with pytest.raises(KeyStoreError) as error:
        load_file_key(_write(tmp_path, "key.pem", pki.ec.key_pem), _write(tmp_path, "cert.pem", pki.rsa.cert_pem))
    assert error.value.code is KeyErrorCode.KEY_NOT_FOUND


@pytest.mark.parametrize("key_data", [b"", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None])
def test_unreadable_key_material_is_a_clear_error(pki, tmp_path, key_data):
    key_path = tmp_path / "absent.pem" if key_data is None else _write(tmp_path, "key.pem", key_data)
    with pytest.raises(KeyStoreError) as error:
        load_file_key(key_path, _write(tmp_path, "cert.pem", pki.rsa.cert_pem))
    assert error.value.code is KeyErrorCode.KEY_NOT_FOUND


def test_ed25519_keys_are_not_used_for_smime(pki, tmp_path):
    ed = devpki.make_leaf(pki.ca, devpki.organisation_subject("x.fr", "1", "X"), key_kind="ed25519")
    with pytest.raises(KeyStoreError) as error:
        load_file_key(_write(tmp_path, "key.pem", ed.key_pem), _write(tmp_path, "cert.pem", ed.cert_pem))
    assert error.value.code is KeyErrorCode.KEY_UNSUPPORTED
