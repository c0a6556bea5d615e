"""Shared material for the key tests: a test PKI, a real SoftHSM2 token set, verifier processes.

SoftHSM2 reads its configuration once per process, when the module is first
initialised: every token the suite uses is created (and loaded through the
`relay keys import` command) before this process touches the module.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import hashes

from relay import devpki
from relay.core.bundle import Bundle
from relay.core.trustview import StaticTrust
from relay.keys.config import SOFTHSM2_MODULE, TokenConfig
from relay.keys.pin import PinSource

SIGNING_TIME = dt.datetime(2026, 6, 1, 9, 30, tzinfo=dt.timezone.utc)
USER_PIN = "4721-relay"
SO_PIN = "so-9920"
PIN_ENV = "RELAY_TEST_TOKEN_PIN"
ORG_ADDRESS = "secretariat.cardio@hopital-test.mssante.fr"

def sample_message(sender: str, recipient: str) -> bytes:
    """A consultation report as a hospital application would submit it (8-bit, MSSanté field)."""
    return (
        b"From: Secretariat Cardiologie <" + sender.encode() + b">\r\n"
        b"To: Dr Martin <" + recipient.encode() + b">\r\n"
        b"Subject: Compte rendu de consultation\r\n"
        b"Date: Mon, 01 Jun 2026 09:30:00 +0000\r\n"
        b"Message-ID: <cr-0001@hopital-test.mssante.fr>\r\n"
        b"X-MSS-CODECDA: 11490-0\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"Bonjour,\r\nVeuillez trouver le compte rendu. R\xc3\xa9sultats normaux.\r\n"
    )


MESSAGE = sample_message(ORG_ADDRESS, "martin@medecin.mssante.fr")


@dataclass(frozen=True)
class Pki:
    root: devpki.Issued
    ca: devpki.Issued
    rsa: devpki.Issued
    ec: devpki.Issued
    ca_file: Path  # root + intermediate, for verifiers' -CAfile


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = devpki.make_ca("IGC-SANTE TEST ROOT")
    ca = devpki.make_ca("IGC-SANTE TEST ORGANISATIONS", root)
    subject = devpki.organisation_subject("hopital-test.mssante.fr", "1750000001", "CH DE TEST")
    rsa = devpki.make_leaf(ca, subject, emails=[ORG_ADDRESS])
    ec = devpki.make_leaf(ca, subject, emails=[ORG_ADDRESS], key_kind="p256")
    ca_file = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca_file.write_bytes(devpki.pem_bundle([root.cert, ca.cert]))
    return Pki(root, ca, rsa, ec, ca_file)


def org_trust(root: devpki.Issued, ca: devpki.Issued) -> StaticTrust:
    """The test root and its intermediate, fresh CRLs, accepting an organisation certificate."""
    bundle = Bundle(
        name="igc-sante-test",
        anchors=(root.cert,),
        intermediates=(ca.cert,),
        crls=(devpki.make_crl(root), devpki.make_crl(ca)),
        require_professional=False,  # an organisation certificate signs for its service mailbox
        allow_org_certs=True,
    )
    return StaticTrust((bundle,))


@dataclass(frozen=True)
class Hsm:
    conf: Path
    env: dict[str, str]  # environment for `relay keys` processes, with the PIN in PIN_ENV
    pin_file: Path  # the same PIN in a 0600 file, for in-process stores

    def config(self, token: str, sessions: int = 4, pin: PinSource | None = None) -> TokenConfig:
        return TokenConfig(SOFTHSM2_MODULE, token, pin or PinSource(file=self.pin_file), sessions)


RSA_TOKEN = "relay-rsa"
EC_TOKEN = "relay-ec"
SPARE_TOKEN = "relay-spare"  # empty at start, for import tests
KEY_LABEL = "hopital-sign"


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Hsm:
    for tool in ("softhsm2-util", "openssl", "gpgsm"):
        assert shutil.which(tool), f"{tool} is required by the key tests (see setup.sh)"
    base = tmp_path_factory.mktemp("softhsm")
    conf = softhsm_conf(base)
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read when this process first initialises the module
    # Child `relay` processes import the checkout under test, as pytest does.
    env = {**os.environ, PIN_ENV: USER_PIN, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    pin_file = base / "user-pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    password_file = base / "p12-password"
    password_file.write_text("p12-secret\n")
    password_file.chmod(0o600)
    for label, issued in ((RSA_TOKEN, pki.rsa), (EC_TOKEN, pki.ec), (SPARE_TOKEN, None)):
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", SO_PIN],
            env=env, check=True, capture_output=True,
        )
        if issued is None:
            continue
        p12 = base / f"{label}.p12"
        p12.write_bytes(issued.pkcs12(b"p12-secret", [pki.ca.cert, pki.root.cert]))
        relay_keys(
            env, "import", "--token", label, "--pin-env", PIN_ENV, "--p12", str(p12),
            "--p12-password-file", str(password_file), "--label", KEY_LABEL, check=True,
        )
    return Hsm(conf, env, pin_file)


def softhsm_conf(base: Path) -> Path:
    """A SoftHSM2 configuration file under base naming its own, new token directory."""
    assert os.path.exists(SOFTHSM2_MODULE), f"SoftHSM2 module missing at {SOFTHSM2_MODULE}"
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    return conf


def relay_keys(env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "relay", "keys", *args], env=env, capture_output=True, timeout=60
    )
    if check:
        assert done.returncode == 0, done.stderr.decode()
    return done


# --- verifiers ---------------------------------------------------------------


@dataclass(frozen=True)
class Parts:
    content: bytes  # the signed first part, exact bytes
    signature: bytes  # DER of the CMS ContentInfo


def split_signed(message: bytes) -> Parts:
    """The two parts of a multipart/signed message, by its boundary."""
    boundary = re.search(rb'boundary="([^"]+)"', message).group(1)  # type: ignore[union-attr]
    chunks = message.split(b"\r\n--" + boundary)
    content = chunks[1].split(b"\r\n", 1)[1]
    signature_part = chunks[2].split(b"\r\n\r\n", 1)[1]
    return Parts(content, base64.b64decode(signature_part))


def openssl_verify(message: bytes, ca_file: Path) -> subprocess.CompletedProcess:
    """openssl cms -verify on the whole S/MIME message; returns the finished process."""
    return subprocess.run(
        ["openssl", "cms", "-verify", "-CAfile", str(ca_file), "-out", os.devnull],
        input=message, capture_output=True, timeout=30,
    )


@pytest.fixture(scope="session")
def gpgsm_verify(pki: Pki) -> Iterator[Callable[[bytes], subprocess.CompletedProcess]]:
    """gpgsm --verify of the detached signature, in a throw-away GNUPGHOME trusting the test root."""
    home = Path(tempfile.mkdtemp(prefix="gpgsm-"))  # short: gpg-agent's socket path has a length limit
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpgsm", "--batch", "--import", str(pki.ca_file)], env=env, check=True, capture_output=True)
    fingerprint = pki.root.cert.fingerprint(hashes.SHA1()).hex(":").upper()
    (home / "trustlist.txt").write_text(f"{fingerprint} S relax\n")

    def verify(message: bytes) -> subprocess.CompletedProcess:
        parts = split_signed(message)
        work = Path(tempfile.mkdtemp(dir=home))
        (work / "sig.p7s").write_bytes(parts.signature)
        (work / "content").write_bytes(parts.content)
        return subprocess.run(
            ["gpgsm", "--batch", "--disable-crl-checks", "--disable-policy-checks", "--verify",
             str(work / "sig.p7s"), str(work / "content")],
            env=env, capture_output=True, timeout=60,
        )

    yield verify
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)
