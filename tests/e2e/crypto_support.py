"""Shared pieces of the signing, decryption and MDN end-to-end tests.

A SoftHSM2 token set made with `softhsm2-util` and filled by `relay keys
import`, the relay started as a child process that sees it (SoftHSM2 reads
SOFTHSM2_CONF once per process), submission over STARTTLS, and the external
verifiers (openssl cms, gpgsm) run on what the sink received.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from relay import devpki
from tests.keys.keys_support import relay_keys, softhsm_conf
from tests.smtp.helpers import ROOT, Relay, read_ready

USER_PIN = "5190-relay"
PIN_ENV = "RELAY_E2E_TOKEN_PIN"


@dataclass(frozen=True)
class Token:
    conf: Path  # the SoftHSM2 configuration naming the token directory
    label: str
    pin_file: Path  # the user PIN, mode 0600

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf), PIN_ENV: USER_PIN, "PYTHONPATH": str(ROOT)}


def make_token(base: Path, label: str, key_label: str, issued: devpki.Issued, chain: list[x509.Certificate]) -> Token:
    """A fresh token holding issued's key and certificate (and its CA certificates) under key_label."""
    for tool in ("softhsm2-util", "openssl", "gpgsm"):
        assert shutil.which(tool), f"{tool} is required (see setup.sh)"
    conf = softhsm_conf(base)
    pin_file = base / "user-pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    token = Token(conf, label, pin_file)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", "so-7731"],
        env=token.env(), check=True, capture_output=True,
    )
    (base / "p12-password").write_text("p12-secret\n")
    (base / "p12-password").chmod(0o600)
    (base / "org.p12").write_bytes(issued.pkcs12(b"p12-secret", chain))
    relay_keys(
        token.env(), "import", "--token", label, "--pin-env", PIN_ENV,
        "--p12", str(base / "org.p12"), "--p12-password-file", str(base / "p12-password"), "--label", key_label, check=True,
    )
    return token


def keys_section(token: Token, *, sign_label: str | None = None, decrypt_label: str | None = None, **extra: Any) -> str:
    lines = ["[keys]", f'token = "{token.label}"', f'pin_file = "{token.pin_file}"']
    lines += [f'sign_label = "{sign_label}"'] if sign_label else []
    lines += [f'decrypt_label = "{decrypt_label}"'] if decrypt_label else []
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def append(config: Path, text: str) -> None:
    config.write_text(config.read_text() + text)


class TokenRelay(Relay):
    """`relay serve` as a child process that sees the test token."""

    token: Token | None = None

    def with_token(self, token: Token) -> TokenRelay:
        self.token = token
        return self

    def start(self) -> TokenRelay:
        assert self.token is not None
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "e2e" / "launch.py"), str(self.config), str(self.spec)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=self.token.env(),
        )
        self.ports = {k: v[1] for k, v in read_ready(self.proc).items()}
        return self


def submit(port: int, root_pem: Path, user: str, password: str, recipients: list[str], data: bytes) -> tuple[int, bytes]:
    """An authenticated submission over STARTTLS; (code, text) of the end-of-DATA reply."""
    context = ssl.create_default_context(cafile=str(root_pem))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=context)
        client.ehlo("app.hopital.test")
        client.login(user, password)
        client.mail(user)
        for rcpt in recipients:
            assert client.rcpt(rcpt)[0] == 250
        return client.data(data)


def crlf(data: bytes) -> bytes:
    """Every bare LF made CRLF (openssl folds its base64 with bare LF even under -crlfeol)."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def delivered(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """The sink's file: (its envelope line, the message)."""
    head, message = raw.split(b"\n", 1)
    return json.loads(head), message


def gpgsm_verify(root: x509.Certificate, ca_file: Path, signature: bytes, content: bytes) -> subprocess.CompletedProcess:
    """gpgsm --verify of a detached signature in a throw-away GNUPGHOME trusting root."""
    home = Path(tempfile.mkdtemp(prefix="gpgsm-"))  # short: gpg-agent's socket path has a length limit
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(["gpgsm", "--batch", "--import", str(ca_file)], env=env, check=True, capture_output=True)
        (home / "trustlist.txt").write_text(f"{root.fingerprint(hashes.SHA1()).hex(':').upper()} S relax\n")
        (home / "sig.p7s").write_bytes(signature)
        (home / "content").write_bytes(content)
        return subprocess.run(
            ["gpgsm", "--batch", "--disable-crl-checks", "--disable-policy-checks", "--verify",
             str(home / "sig.p7s"), str(home / "content")],
            env=env, capture_output=True, timeout=60,
        )
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
