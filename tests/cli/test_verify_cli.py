"""The `relay verify` command-line contract, run as a real subprocess.

relay verify [--config FILE] [--anchor PEM]... [--intermediate PEM]...
             [--crl FILE]... [--at ISO-8601] [--no-require-professional]
             [--allow-org-certs] [--json] MESSAGE...

Exit 0 when every message is accepted, 1 when any is rejected, 2 on a usage
or configuration error (one line on stderr, no traceback).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from relay.devpki import make_crl, make_leaf, organisation_subject, pem_bundle
from tests import engines
from tests.engines import DOCTOR, DOCTOR_ID, Pki

ROOT = Path(__file__).resolve().parents[2]
SIGNER_KEYS = {"subject", "fingerprint_sha256", "email", "national_id", "profession", "organisation_id"}
ORG_DOMAIN = "clinique-des-lilas.mssante.fr"


@dataclass(frozen=True)
class Files:
    pki: Pki
    dir: Path

    def __getitem__(self, name: str) -> str:
        return str(self.dir / name)


def relay_verify(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "relay", "verify", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """Trust material in every accepted form, and messages from several signers."""
    pki = engines.build_pki()
    where = tmp_path_factory.mktemp("cli")
    root_crl, inter_crl = pki.crls
    stale = make_crl(pki.intermediate, this_update=engines.DEFAULT_START, next_update=engines.NOW - engines.ONE_DAY)
    written = {
        "root.pem": pki.root.cert_pem,
        "root.der": _der(pki.root.cert),
        "roots.pem": pem_bundle([pki.foreign_root.cert, pki.root.cert]),
        "inter.pem": pki.intermediate.cert_pem,
        "inter.der": _der(pki.intermediate.cert),
        "chain.pem": pem_bundle([pki.intermediate.cert, pki.root.cert]),
        "root-crl.pem": root_crl.public_bytes(serialization.Encoding.PEM),
        "inter-crl.pem": inter_crl.public_bytes(serialization.Encoding.PEM),
        "inter-crl.der": inter_crl.public_bytes(serialization.Encoding.DER),
        "both-crls.pem": b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.crls),
        "stale-crl.pem": stale.public_bytes(serialization.Encoding.PEM),
        "bad.pem": b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        "empty.pem": b"",
        "unsigned.eml": engines.text_message(f"Dr Jean Dupont <{DOCTOR}>"),
    }
    message = engines.text_message(f"Dr Jean Dupont <{DOCTOR}>")
    for signer in ("rsa", "revoked", "direct", "foreign"):
        written[f"{signer}.eml"] = engines.sign_openssl(message, pki.signers[signer])
    organisation = make_leaf(
        pki.intermediate,
        organisation_subject(ORG_DOMAIN, "1750000001", "CLINIQUE DES LILAS"),
        dns_names=[ORG_DOMAIN],
    )
    org_message = engines.text_message(f"Secretariat <secretariat@{ORG_DOMAIN}>")
    written["org.eml"] = engines.sign_openssl(org_message, engines.SigningKey(organisation, (pki.intermediate.cert,)))
    for name, data in written.items():
        (where / name).write_bytes(data)
    return Files(pki, where)


def _json_lines(result: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def _assert_usage_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert result.stdout == ""


# --------------------------------------------------------------------------
# Output.


def test_json_object_for_an_accepted_message(files: Files) -> None:
    result = relay_verify("--anchor", files["root.pem"], "--intermediate", files["inter.pem"], "--json", files["rsa.eml"])
    assert result.returncode == 0, result.stderr
    [line] = _json_lines(result)
    assert set(line) == {"file", "verdict", "code", "detail", "signer"}
    assert (line["file"], line["verdict"], line["code"]) == (files["rsa.eml"], "accept", "ok")
    assert set(line["signer"]) == SIGNER_KEYS
    assert line["signer"]["national_id"] == DOCTOR_ID
    assert line["signer"]["email"] == DOCTOR
    expected = hashlib.sha256(_der(files.pki.signers["rsa"].issued.cert)).hexdigest()
    assert line["signer"]["fingerprint_sha256"].replace(":", "").lower() == expected


def test_json_signer_is_null_when_there_is_none(files: Files) -> None:
    result = relay_verify("--anchor", files["root.pem"], "--json", files["unsigned.eml"])
    assert result.returncode == 1
    [line] = _json_lines(result)
    assert (line["verdict"], line["code"], line["signer"]) == ("reject", "unsigned", None)
    assert line["detail"]


def test_one_json_line_per_message_and_exit_1_when_any_is_rejected(files: Files) -> None:
    result = relay_verify(
        "--anchor", files["root.pem"], "--intermediate", files["inter.pem"], "--crl", files["inter-crl.pem"],
        "--json", files["rsa.eml"], files["revoked.eml"], files["foreign.eml"],
    )
    assert result.returncode == 1
    lines = _json_lines(result)
    assert [(l["file"], l["code"]) for l in lines] == [
        (files["rsa.eml"], "ok"),
        (files["revoked.eml"], "certificate-revoked"),
        (files["foreign.eml"], "untrusted-issuer"),
    ]


def test_human_line_without_json(files: Files) -> None:
    result = relay_verify("--anchor", files["root.pem"], "--intermediate", files["inter.pem"], files["rsa.eml"], files["unsigned.eml"])
    assert result.returncode == 1
    accepted, rejected = result.stdout.splitlines()
    assert accepted.startswith(f"{files['rsa.eml']}: ACCEPT ok")
    assert DOCTOR in accepted and DOCTOR_ID in accepted
    assert rejected.startswith(f"{files['unsigned.eml']}: REJECT unsigned")
    with pytest.raises(json.JSONDecodeError):
        json.loads(accepted)


def test_patient_data_is_not_echoed(files: Files) -> None:
    result = relay_verify("--anchor", files["root.pem"], "--intermediate", files["inter.pem"], "--json", files["rsa.eml"])
    assert "Compte rendu" not in result.stdout + result.stderr
    assert "veuillez" not in result.stdout + result.stderr


# --------------------------------------------------------------------------
# Trust material forms.


@pytest.mark.parametrize(
    ("anchor", "intermediate"),
    [("root.pem", "inter.pem"), ("root.der", "inter.der"), ("roots.pem", "inter.pem"), ("root.pem", "chain.pem")],
)
def test_anchor_and_intermediate_forms(files: Files, anchor: str, intermediate: str) -> None:
    result = relay_verify("--anchor", files[anchor], "--intermediate", files[intermediate], "--json", files["rsa.eml"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert _json_lines(result)[0]["code"] == "ok"


def test_several_anchor_options(files: Files) -> None:
    foreign = files.dir / "foreign-root.pem"
    foreign.write_bytes(files.pki.foreign_root.cert_pem)
    result = relay_verify("--anchor", str(foreign), "--anchor", files["root.pem"], "--intermediate", files["inter.pem"], files["rsa.eml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_intermediate_the_issuer_is_untrusted(files: Files) -> None:
    # openssl sent the intermediate with the signature, so the path still builds;
    # with only a foreign anchor it cannot.
    foreign = files.dir / "only-foreign.pem"
    foreign.write_bytes(files.pki.foreign_root.cert_pem)
    result = relay_verify("--anchor", str(foreign), "--json", files["rsa.eml"])
    assert result.returncode == 1
    assert _json_lines(result)[0]["code"] == "untrusted-issuer"


@pytest.mark.parametrize("crl", ["inter-crl.pem", "inter-crl.der", "both-crls.pem"])
def test_pem_and_der_crls_revoke(files: Files, crl: str) -> None:
    result = relay_verify("--anchor", files["root.pem"], "--intermediate", files["inter.pem"], "--crl", files[crl], "--json", files["revoked.eml"])
    assert result.returncode == 1
    assert _json_lines(result)[0]["code"] == "certificate-revoked"


def test_revocation_is_checked_only_for_issuers_with_a_crl(files: Files) -> None:
    # The root's CRL covers the intermediate; nothing covers the signer, so
    # its revocation is not checked and the revoked signer passes.
    args = ("--anchor", files["root.pem"], "--intermediate", files["inter.pem"])
    unchecked = relay_verify(*args, "--crl", files["root-crl.pem"], "--json", files["revoked.eml"])
    assert unchecked.returncode == 0, unchecked.stdout
    no_crl = relay_verify(*args, "--json", files["revoked.eml"])
    assert no_crl.returncode == 0, no_crl.stdout


def test_a_stale_crl_is_a_hard_failure_for_its_issuer(files: Files) -> None:
    result = relay_verify("--anchor", files["root.pem"], "--intermediate", files["inter.pem"], "--crl", files["stale-crl.pem"], "--json", files["rsa.eml"])
    assert result.returncode == 1
    assert _json_lines(result)[0]["code"] == "revocation-unknown"


# --------------------------------------------------------------------------
# Evaluation time and profile switches.


@pytest.mark.parametrize(
    ("at", "code"),
    [
        ("2024-06-01T00:00:00Z", "certificate-not-yet-valid"),
        ("2036-06-01T00:00:00+00:00", "certificate-expired"),
        ("2030-06-01T12:00:00", "ok"),  # no zone: UTC
        ("2030-06-01", "ok"),
    ],
)
def test_at_selects_the_evaluation_time(files: Files, at: str, code: str) -> None:
    result = relay_verify("--anchor", files["root.pem"], "--intermediate", files["inter.pem"], "--at", at, "--json", files["rsa.eml"])
    assert _json_lines(result)[0]["code"] == code
    assert result.returncode == (0 if code == "ok" else 1)


def test_no_require_professional(files: Files) -> None:
    args = ("--anchor", files["root.pem"], "--intermediate", files["inter.pem"], "--json", files["direct.eml"])
    assert _json_lines(relay_verify(*args))[0]["code"] == "not-professional"
    relaxed = relay_verify("--no-require-professional", *args)
    assert relaxed.returncode == 0, relaxed.stdout
    assert _json_lines(relaxed)[0]["signer"]["national_id"] is None


def test_allow_org_certs(files: Files) -> None:
    args = ("--anchor", files["root.pem"], "--intermediate", files["inter.pem"], "--json", files["org.eml"])
    refused = _json_lines(relay_verify(*args))[0]
    assert refused["code"] == "address-mismatch"
    allowed = relay_verify("--allow-org-certs", *args)
    assert allowed.returncode == 0, allowed.stdout
    assert _json_lines(allowed)[0]["signer"]["organisation_id"] == "1750000001"


# --------------------------------------------------------------------------
# Usage and configuration errors: exit 2, one line, no traceback.


def test_missing_message_file(files: Files) -> None:
    missing = str(files.dir / "nowhere.eml")
    _assert_usage_error(relay_verify("--anchor", files["root.pem"], missing), "nowhere.eml")


def test_missing_anchor_file(files: Files) -> None:
    _assert_usage_error(relay_verify("--anchor", str(files.dir / "nowhere.pem"), files["rsa.eml"]), "nowhere.pem")


@pytest.mark.parametrize("bad", ["bad.pem", "empty.pem", "rsa.eml"])
def test_unreadable_anchor(files: Files, bad: str) -> None:
    _assert_usage_error(relay_verify("--anchor", files[bad], files["rsa.eml"]), bad)


def test_bad_crl(files: Files) -> None:
    _assert_usage_error(relay_verify("--anchor", files["root.pem"], "--crl", files["root.pem"], files["rsa.eml"]), "root.pem")


@pytest.mark.parametrize("at", ["yesterday", "2026-13-01", ""])
def test_bad_at(files: Files, at: str) -> None:
    _assert_usage_error(relay_verify("--anchor", files["root.pem"], "--at", at, files["rsa.eml"]), "--at")


def test_no_trust_given(files: Files) -> None:
    _assert_usage_error(relay_verify(files["rsa.eml"]), "--anchor")


def test_config_and_anchor_are_exclusive(files: Files) -> None:
    _assert_usage_error(relay_verify("--config", files["root.pem"], "--anchor", files["root.pem"], files["rsa.eml"]), "exclusive")


def test_no_message(files: Files) -> None:
    _assert_usage_error(relay_verify("--anchor", files["root.pem"]))


def test_unknown_option(files: Files) -> None:
    _assert_usage_error(relay_verify("--anchor", files["root.pem"], "--frobnicate", files["rsa.eml"]), "--frobnicate")


# --------------------------------------------------------------------------
# --config: the trust directory decides which bundle applies to which sender.


def _trust_directory(files: Files, name: str, national_id: str) -> Path:
    """relay.toml and a trust directory trusting the test PKI for medecin.mssante.fr."""
    base = files.dir / name
    trust = base / "trust"
    trust.mkdir(parents=True)
    (base / "relay.toml").write_text('trust_dir = "trust"\n')
    (trust / "bundles.toml").write_text(
        "[bundle.signers]\n"
        'purpose = "smime"\n'
        f'anchors = ["{files["root.pem"]}"]\n'
        f'intermediates = ["{files["inter.pem"]}"]\n'
        f'crls = ["{files["both-crls.pem"]}"]\n'
        'revocation = "hard"\n'
    )
    (trust / "domains.toml").write_text('[domain."medecin.mssante.fr"]\nsigner_bundles = ["signers"]\n')
    (trust / "mailboxes.toml").write_text('[mailboxes]\nfile = "mailboxes.tsv"\n')
    (trust / "mailboxes.tsv").write_text(f"relay-mailboxes\t1\n{DOCTOR}\tPER\t{national_id}\t10\t\n")
    return base / "relay.toml"


def test_config_trust_directory(files: Files) -> None:
    config = _trust_directory(files, "agreeing", DOCTOR_ID)
    result = relay_verify("--config", str(config), "--at", "2026-06-01T12:00:00Z", "--json", files["rsa.eml"], files["revoked.eml"])
    assert result.returncode == 1, result.stderr
    assert [l["code"] for l in _json_lines(result)] == ["ok", "certificate-revoked"]


def test_config_directory_mismatch(files: Files) -> None:
    config = _trust_directory(files, "disagreeing", "810009999999")
    result = relay_verify("--config", str(config), "--at", "2026-06-01T12:00:00Z", "--json", files["rsa.eml"])
    assert result.returncode == 1, result.stderr
    [line] = _json_lines(result)
    assert line["code"] == "directory-mismatch"
    assert line["signer"]["national_id"] == DOCTOR_ID


def test_config_sender_domain_without_a_rule(files: Files) -> None:
    config = _trust_directory(files, "no-rule", DOCTOR_ID)
    result = relay_verify("--config", str(config), "--at", "2026-06-01T12:00:00Z", "--json", files["org.eml"])
    assert result.returncode == 1
    assert _json_lines(result)[0]["code"] == "untrusted-issuer"


def test_config_missing(files: Files) -> None:
    _assert_usage_error(relay_verify("--config", str(files.dir / "nowhere.toml"), files["rsa.eml"]), "nowhere.toml")


def test_config_broken(files: Files) -> None:
    config = _trust_directory(files, "broken", DOCTOR_ID)
    (config.parent / "trust" / "domains.toml").write_text('[domain."medecin.mssante.fr"]\nsigner_bundles = ["nosuch"]\n')
    result = relay_verify("--config", str(config), files["rsa.eml"])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "nosuch" in result.stderr
