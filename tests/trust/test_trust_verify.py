"""relay verify --config: the trust directory drives verification end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from relay.devpki import load_issued
from tests.engines import SigningKey, sign_openssl, text_message


def demo_signer(config: Path, name: str) -> SigningKey:
    certs = config.parent.parent / "certs" / "demo"
    return SigningKey(
        load_issued(certs, name), (load_issued(certs, "igc-personnes").cert,), load_issued(certs, "igc-root").cert
    )


def verify(config: Path, message: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "message.eml"
    path.write_bytes(message)
    run = subprocess.run(
        [sys.executable, "-m", "relay", "verify", "--config", str(config), "--json", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode in (0, 1), run.stderr
    return json.loads(run.stdout)


def test_a_practitioner_of_the_local_domain_is_accepted(example: Path, tmp_path: Path) -> None:
    signed = sign_openssl(text_message("claire.martin@hopital-demo.mssante.fr"), demo_signer(example, "dr-martin"))
    verdict = verify(example, signed, tmp_path)
    assert verdict["code"] == "ok", verdict


def test_a_peer_practitioner_is_accepted_through_the_peer_rule(example: Path, tmp_path: Path) -> None:
    signed = sign_openssl(text_message("paul.durand@clinique-peer.mssante.fr"), demo_signer(example, "dr-durand"))
    assert verify(example, signed, tmp_path)["code"] == "ok"


def test_the_directory_disagreeing_with_the_certificate_is_refused(example: Path, tmp_path: Path) -> None:
    mailboxes = example.parent / "trust" / "mailboxes.tsv"
    mailboxes.write_text(mailboxes.read_text().replace("\t810000000001\t", "\t810000000099\t"))
    signed = sign_openssl(text_message("claire.martin@hopital-demo.mssante.fr"), demo_signer(example, "dr-martin"))
    assert verify(example, signed, tmp_path)["code"] == "directory-mismatch"


def test_a_sender_of_an_unknown_domain_has_no_trusted_signers(example: Path, tmp_path: Path) -> None:
    signed = sign_openssl(text_message("claire.martin@ailleurs.example"), demo_signer(example, "dr-martin"))
    assert verify(example, signed, tmp_path)["code"] == "untrusted-issuer"


def test_an_address_rule_with_no_signer_bundles_refuses_its_signed_mail(example: Path, tmp_path: Path) -> None:
    domains = example.parent / "trust" / "domains.toml"
    domains.write_text(domains.read_text() + '\n[address."claire.martin@hopital-demo.mssante.fr"]\nsigner_bundles = []\n')
    signed = sign_openssl(text_message("claire.martin@hopital-demo.mssante.fr"), demo_signer(example, "dr-martin"))
    assert verify(example, signed, tmp_path)["code"] == "untrusted-issuer"
