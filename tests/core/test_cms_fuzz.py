"""Whatever bytes arrive, CMS verification answers with a SignedData or a Rejection, never a crash."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay import devpki
from relay.core.cms import SignedData, verify_signed_data
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from tests import cmsbuild
from tests.cmsbuild import SignerSpec
from tests.mutation import EDITS, mutate

CONTENT = b"Content-Type: text/plain\r\n\r\nBilan sanguin.\r\n"
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bytes | None]]:
    """Valid signatures of several shapes, to mutate."""
    ca = devpki.make_ca("IGC-SANTE TEST")
    rsa = devpki.make_leaf(ca, devpki.practitioner_subject("899700367917", "DUPONT", "Jean"), key_kind="rsa1024")
    p256 = devpki.make_leaf(ca, devpki.practitioner_subject("899700367918", "MARTIN", "Anne"), key_kind="p256")
    out = [
        (cmsbuild.sign(CONTENT, SignerSpec(p256)), CONTENT),
        (cmsbuild.sign(CONTENT, SignerSpec(rsa, pss_salt=32, sid="ski"), detached=False), None),
        (_openssl_streamed(tmp_path_factory.mktemp("fuzz"), p256), None),
    ]
    for der, detached in out:
        assert _outcome(der, detached) in (None, Reason.WEAK_ALGORITHM)  # the seeds themselves are sound
    return out


def _openssl_streamed(tmp: Path, signer: devpki.Issued) -> bytes:
    (tmp / "c.pem").write_bytes(signer.cert_pem)
    (tmp / "k.pem").write_bytes(signer.key_pem)
    (tmp / "m").write_bytes(CONTENT)
    return subprocess.run(
        ["openssl", "cms", "-sign", "-binary", "-nodetach", "-stream", "-outform", "DER",
         "-in", str(tmp / "m"), "-signer", str(tmp / "c.pem"), "-inkey", str(tmp / "k.pem")],
        check=True, capture_output=True,
    ).stdout


def _outcome(der: bytes, detached: bytes | None) -> Reason | None:
    """None when verified; the reason when refused. Any other exception escapes and fails the test."""
    try:
        result = verify_signed_data(der, detached)
    except Rejection as refusal:
        assert refusal.detail
        return refusal.reason
    assert isinstance(result, SignedData) and result.signers
    return None


@FUZZ
@given(der=st.binary(max_size=600), detached=st.none() | st.binary(max_size=64))
def test_random_bytes(der: bytes, detached: bytes | None) -> None:
    assert _outcome(der, detached) is not Reason.OK


@FUZZ
@given(index=st.integers(min_value=0, max_value=2), edits=EDITS)
def test_mutated_signatures(seeds: list[tuple[bytes, bytes | None]], index: int, edits: list[tuple[str, int, bytes]]) -> None:
    der, detached = seeds[index]
    mutated = mutate(der, edits)
    outcome = _outcome(mutated, detached)
    if mutated == der:
        assert outcome in (None, Reason.WEAK_ALGORITHM)


@FUZZ
@given(index=st.integers(min_value=0, max_value=2), edits=EDITS)
def test_mutated_detached_content(seeds: list[tuple[bytes, bytes | None]], index: int, edits: list[tuple[str, int, bytes]]) -> None:
    der, detached = seeds[index]
    if detached is None:
        assert _outcome(der, mutate(CONTENT, edits)) is Reason.MALFORMED  # eContent beside detached
        return
    changed = mutate(detached, edits)
    assert _outcome(der, changed) is (None if changed == detached else Reason.SIGNATURE_INVALID)
