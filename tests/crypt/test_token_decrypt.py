"""Decryption through a SoftHSM2 token: the private key never leaves it.

The token is created with softhsm2-util and loaded with `relay keys import`;
the decryption runs in a child process (see token_decrypt_child.py).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from asn1crypto import cms

from crypt_support import MESSAGE, openssl
from relay.core.smime_encrypt import OAEP_SHA256, PKCS1V15, ContentCipher, KeyTransport, Recipient, TransportScheme, encrypt_message
from tests.keys.keys_support import relay_keys, softhsm_conf

ROOT = Path(__file__).resolve().parents[2]
TOKEN, LABEL, PIN_ENV, PIN = "relay-decrypt", "hopital-decrypt", "RELAY_TEST_DECRYPT_PIN", "5512-relay"
OAEP_SHA1 = KeyTransport(TransportScheme.RSA_OAEP, "sha1", "sha1")


@pytest.fixture(scope="module")
def token_env(crypt_pki, tmp_path_factory) -> dict[str, str]:
    for tool in ("softhsm2-util", "openssl"):
        assert shutil.which(tool), f"{tool} is required by the token tests (see setup.sh)"
    base = tmp_path_factory.mktemp("decrypt-hsm")
    conf = softhsm_conf(base)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), PIN_ENV: PIN, "P12_PASSWORD": "p12-secret", "PYTHONPATH": str(ROOT)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "so-1234"],
        env=env, check=True, capture_output=True,
    )
    p12 = base / "recipient.p12"
    p12.write_bytes(crypt_pki.recipient.pkcs12(b"p12-secret", [crypt_pki.ca.cert]))
    relay_keys(
        env, "import", "--token", TOKEN, "--pin-env", PIN_ENV,
        "--p12", str(p12), "--p12-password-env", "P12_PASSWORD", "--label", LABEL, check=True,
    )
    return env


def decrypt_in_token(env: dict[str, str], messages: dict[str, bytes], folder: Path) -> dict[str, dict]:
    for name, data in messages.items():
        (folder / name).write_bytes(data)
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("token_decrypt_child.py")), TOKEN, LABEL, PIN_ENV,
         *(str(folder / name) for name in messages)],
        env=env, capture_output=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    results = [json.loads(line) for line in done.stdout.decode().splitlines()]
    return {r["message"]: r for r in results}


def test_decryption_through_the_token(crypt_pki, token_env, tmp_path):
    cert = crypt_pki.recipient.cert
    ours = {
        "gcm-pkcs1v15": encrypt_message(MESSAGE, [Recipient(cert, PKCS1V15)], ContentCipher.AES256_GCM),
        "cbc-oaep-sha1": encrypt_message(MESSAGE, [Recipient(cert, OAEP_SHA1)], ContentCipher.AES256_CBC),
        "gcm-oaep-sha256": encrypt_message(MESSAGE, [Recipient(cert, OAEP_SHA256)], ContentCipher.AES256_GCM),
    }
    recip = str(crypt_pki.files / "recipient.pem")
    plain = MESSAGE.replace(b"\r\n", b"\n")
    theirs = {
        "openssl-aes256": openssl("cms", "-encrypt", "-aes256", recip, data=plain).stdout,
        "openssl-gcm-oaep": openssl(
            "cms", "-encrypt", "-aes-256-gcm", "-recip", recip, "-keyopt", "rsa_padding_mode:oaep", data=plain
        ).stdout,
    }
    refused = {
        "wrong-key-bytes": _corrupt(ours["gcm-pkcs1v15"], _encrypted_key),
        "tampered-tag": _corrupt(ours["gcm-pkcs1v15"], _tag),
    }
    # The refused ones first: the token must keep answering after them.
    results = decrypt_in_token(token_env, {**refused, **ours, **theirs}, tmp_path)

    for name in ("gcm-pkcs1v15", "cbc-oaep-sha1", "openssl-aes256", "openssl-gcm-oaep"):
        assert results[name]["ok"], results[name]
        entity = base64.b64decode(results[name]["entity"])
        assert b"Content-Type: text/plain; charset=utf-8\r\n" in entity
        assert b"sultats normaux" in entity
    # SoftHSM2 2.6 implements OAEP with SHA-1 only: an operational error with its code, not a verdict
    assert results["gcm-oaep-sha256"] == {
        "message": "gcm-oaep-sha256", "ok": False, "code": "key-unsupported",
        "detail": f"token {TOKEN!r} cannot decrypt RSA-OAEP with sha256 and MGF1-sha256",
    }
    # A bad encrypted key and a bad tag: the same verdict, and the token session survives both
    for name in refused:
        assert results[name] == {"message": name, "ok": False, "reason": "decryption-failed", "detail": "the message cannot be decrypted"}


def _encrypted_key(info: cms.ContentInfo) -> None:
    ktri = info["content"]["recipient_infos"][0].chosen
    key = bytearray(ktri["encrypted_key"].native)
    key[100] ^= 0x5A
    ktri["encrypted_key"] = bytes(key)


def _tag(info: cms.ContentInfo) -> None:
    mac = bytearray(info["content"]["mac"].native)
    mac[0] ^= 0x01
    info["content"]["mac"] = bytes(mac)


def _corrupt(message: bytes, change: Callable[[cms.ContentInfo], None]) -> bytes:
    """The same message with one field of its envelope changed."""
    head, _, body = message.partition(b"\r\n\r\n")
    info = cms.ContentInfo.load(base64.b64decode(body))
    change(info)
    return head + b"\r\n\r\n" + base64.encodebytes(info.dump(force=True)).replace(b"\n", b"\r\n")
