"""End to end through relay.core.verify.verify_message: messages signed by the openssl CLI.

Each message is signed by a real `openssl cms -sign` process (multipart/signed,
SHA-256), then judged against the shared test PKI's bundles at the fixed NOW.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest
from cryptography import x509

from relay.core.bundle import RevocationMode
from relay.core.reasons import Reason
from relay.core.trustview import StaticTrust
from relay.core.verdict import Decision
from relay.core.verify import verify_message
from relay.devpki import Issued, crl_pem, pem_bundle
from tests.pki import NOW, RPPS_ID

PRACTITIONER = "jean.dupont@hopital-test.mssante.fr"
CONTENT = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Compte rendu de consultation.\r\n"
)


def signed_message(tmp_path: Path, signer: Issued, sender: str, chain: Sequence[x509.Certificate] = ()) -> bytes:
    """A multipart/signed message from `sender`, signed by `signer` with `chain` in the CMS certificate set."""
    (tmp_path / "signer.pem").write_bytes(signer.cert_pem)
    (tmp_path / "signer.key").write_bytes(signer.key_pem)
    (tmp_path / "content.eml").write_bytes(CONTENT)
    command = ["openssl", "cms", "-sign", "-binary", "-crlfeol", "-md", "sha256", "-in", "content.eml",
               "-signer", "signer.pem", "-inkey", "signer.key"]
    if chain:
        (tmp_path / "chain.pem").write_bytes(pem_bundle(chain))
        command += ["-certfile", "chain.pem"]
    signed = subprocess.run(command, cwd=tmp_path, check=True, capture_output=True).stdout
    headers = (
        f"From: Expediteur <{sender}>\r\n"
        "To: <secretariat@clinique-test.mssante.fr>\r\n"
        "Subject: Compte rendu\r\n"
        "Date: Mon, 01 Jun 2026 12:00:00 +0000\r\n"
        "Message-ID: <pipeline-test@hopital-test.mssante.fr>\r\n"
    )
    return headers.encode() + signed


@pytest.fixture(scope="module")
def practitioner(pki) -> Issued:
    return pki.practitioner(email=PRACTITIONER)


@pytest.fixture(scope="module")
def practitioner_message(pki, practitioner, tmp_path_factory) -> bytes:
    return signed_message(tmp_path_factory.mktemp("msg"), practitioner, PRACTITIONER, [pki.personnes.cert])


def test_practitioner_message_is_accepted_with_its_identity(pki, practitioner_message):
    verdict = verify_message(practitioner_message, StaticTrust((pki.bundle(),)), NOW)
    assert (verdict.decision, verdict.code, verdict.bundle) == (Decision.ACCEPT, Reason.OK, "igc-sante-test")
    assert verdict.signer is not None
    assert (verdict.signer.national_id, verdict.signer.email, verdict.signer.profession) == (RPPS_ID, PRACTITIONER, "Médecin")


def test_intermediate_from_the_signature_completes_the_path(pki, practitioner_message):
    verdict = verify_message(practitioner_message, StaticTrust((pki.bundle(intermediates=()),)), NOW)
    assert verdict.code is Reason.OK


def test_untrusted_signer(pki, practitioner_message):
    verdict = verify_message(practitioner_message, StaticTrust((pki.direct_bundle(),)), NOW)
    assert verdict.code is Reason.UNTRUSTED_ISSUER
    assert verdict.signer is not None and verdict.signer.national_id == RPPS_ID


def test_revoked_signer(pki, practitioner, practitioner_message):
    crls = (pki.crl(pki.root), pki.crl(pki.personnes, [practitioner.cert.serial_number]))
    verdict = verify_message(practitioner_message, StaticTrust((pki.bundle(crls=crls),)), NOW)
    assert verdict.code is Reason.CERTIFICATE_REVOKED


def test_missing_crl_in_hard_mode(pki, practitioner_message):
    verdict = verify_message(practitioner_message, StaticTrust((pki.bundle(crls=()),)), NOW)
    assert verdict.code is Reason.REVOCATION_UNKNOWN


def test_sender_not_bound_to_the_signer(pki, practitioner, tmp_path):
    raw = signed_message(tmp_path, practitioner, "autre.medecin@hopital-test.mssante.fr", [pki.personnes.cert])
    verdict = verify_message(raw, StaticTrust((pki.bundle(),)), NOW)
    assert verdict.code is Reason.ADDRESS_MISMATCH


def test_directory_disagreement(pki, practitioner_message):
    trust = StaticTrust((pki.bundle(),), national_ids={PRACTITIONER: "810009999999"})
    assert verify_message(practitioner_message, trust, NOW).code is Reason.DIRECTORY_MISMATCH
    agreeing = StaticTrust((pki.bundle(),), national_ids={PRACTITIONER: RPPS_ID})
    assert verify_message(practitioner_message, agreeing, NOW).code is Reason.OK


def test_organisation_message_needs_org_certs_allowed(pki, tmp_path):
    org = pki.organisation()
    raw = signed_message(tmp_path, org, "secretariat@hopital-test.mssante.fr", [pki.structures.cert])
    assert verify_message(raw, StaticTrust((pki.bundle(),)), NOW).code is Reason.ADDRESS_MISMATCH
    assert verify_message(raw, StaticTrust((pki.bundle(allow_org_certs=True),)), NOW).code is Reason.OK


def test_direct_signer_needs_no_professional_identifier_only_when_told(pki, tmp_path):
    direct = pki.direct()
    raw = signed_message(tmp_path, direct, "drsmith@direct.example.org")
    assert verify_message(raw, StaticTrust((pki.direct_bundle(),)), NOW).code is Reason.OK
    strict = pki.direct_bundle(require_professional=True)
    assert verify_message(raw, StaticTrust((strict,)), NOW).code is Reason.NOT_PROFESSIONAL


def test_second_bundle_accepts_what_the_first_refuses(pki, practitioner_message):
    trust = StaticTrust((pki.direct_bundle(), pki.bundle()))
    verdict = verify_message(practitioner_message, trust, NOW)
    assert (verdict.code, verdict.bundle) == (Reason.OK, "igc-sante-test")


def test_refusal_that_got_furthest_is_reported(pki, practitioner_message):
    policy = pki.bundle(name="policy", required_policies=frozenset({"1.2.250.1.213.1.1.1"}))
    verdict = verify_message(practitioner_message, StaticTrust((pki.direct_bundle(), policy)), NOW)
    assert (verdict.code, verdict.bundle) == (Reason.POLICY_MISMATCH, "policy")


def relay_verify(cwd: Path, *arguments: str) -> tuple[int, str]:
    """`relay verify --json` as a process; the exit status and the verdict code of its one message."""
    done = subprocess.run([sys.executable, "-m", "relay", "verify", "--at", NOW.isoformat(), "--json", *arguments],
                          cwd=cwd, capture_output=True, text=True)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)["code"]


def test_relay_verify_command_on_files(pki, practitioner, practitioner_message, tmp_path):
    """--anchor/--intermediate/--crl files, --at, JSON lines, exit status."""
    files = {
        "root.pem": pki.root.cert_pem,
        "inter.pem": pem_bundle([pki.personnes.cert]),
        "revoked.crl": crl_pem(pki.crl(pki.personnes, [practitioner.cert.serial_number])),
        "message.eml": practitioner_message,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    trust = ["--anchor", "root.pem", "--intermediate", "inter.pem"]
    assert relay_verify(tmp_path, *trust, "message.eml") == (0, "ok")
    assert relay_verify(tmp_path, *trust, "--crl", "revoked.crl", "message.eml") == (1, "certificate-revoked")


def test_relay_verify_direct_signer_with_no_require_professional(pki, tmp_path):
    (tmp_path / "message.eml").write_bytes(signed_message(tmp_path, pki.direct(), "drsmith@direct.example.org"))
    (tmp_path / "anchor.pem").write_bytes(pki.direct_root.cert_pem)
    (tmp_path / "hisp.pem").write_bytes(pki.direct_ca.cert_pem)
    trust = ["--anchor", "anchor.pem", "--intermediate", "hisp.pem"]
    assert relay_verify(tmp_path, *trust, "message.eml") == (1, "not-professional")
    assert relay_verify(tmp_path, *trust, "--no-require-professional", "message.eml") == (0, "ok")


def test_where_available_mode_of_the_command_line_bundle_is_honoured(pki, practitioner_message):
    # The CLI's ad-hoc bundle uses where-available: no CRL for an issuer means unchecked.
    bundle = pki.bundle(crls=(), revocation=RevocationMode.WHERE_AVAILABLE)
    assert verify_message(practitioner_message, StaticTrust((bundle,)), NOW).code is Reason.OK


def test_signer_certificate_with_a_duplicated_extension_gives_a_verdict(pki, practitioner, tmp_path):
    malformed = Issued(pki.with_duplicate_extension(practitioner.cert, pki.personnes), practitioner.key)
    raw = signed_message(tmp_path, malformed, PRACTITIONER, [pki.personnes.cert])
    verdict = verify_message(raw, StaticTrust((pki.bundle(),)), NOW)
    # Refused by the CMS reader (malformed) or, past it, by the path check (untrusted): never an exception.
    assert verdict.decision is Decision.REJECT
    assert verdict.code in (Reason.MALFORMED, Reason.UNTRUSTED_ISSUER)
