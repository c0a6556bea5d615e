"""Property tests: whatever bytes arrive, verification answers with a Verdict.

Random input and random mutations (byte flips, truncations, insertions) of
messages genuinely signed by each engine never raise, and a mutation inside
the signed bytes of a detached signature is never accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.core.trustview import StaticTrust
from relay.core.verdict import Decision, Verdict
from relay.core.verify import verify_message
from tests import engines
from tests.engines import NOW, Pki, bundle_for

from .conftest import SUPPORTED, EngineCase, Signatory, doctor_message

# Bounded so that the suite stays fast: many engine cases, few examples each.
_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=_QUIET)
PER_CASE = settings(max_examples=25, deadline=None, suppress_health_check=_QUIET)
DETACHED = tuple(c for c in SUPPORTED if not c.options.get("opaque"))


@dataclass(frozen=True)
class Mutation:
    kind: str  # flip, truncate, insert
    at: int
    byte: int

    def apply(self, raw: bytes) -> bytes:
        at = min(self.at, len(raw) - 1)
        if self.kind == "flip":
            return raw[:at] + bytes([raw[at] ^ (self.byte or 1)]) + raw[at + 1 :]
        if self.kind == "truncate":
            return raw[:at]
        return raw[:at] + bytes([self.byte]) + raw[at:]


def mutations(start: int, stop: int) -> st.SearchStrategy[Mutation]:
    return st.builds(
        Mutation,
        st.sampled_from(["flip", "truncate", "insert"]),
        st.integers(start, stop - 1),
        st.integers(0, 255),
    )


def _verdict(pki: Pki, raw: bytes) -> Verdict:
    verdict = verify_message(raw, StaticTrust((bundle_for(pki),)), NOW)
    assert isinstance(verdict, Verdict)
    assert verdict.detail  # a refusal always says why
    return verdict


def _signed_span(message: bytes) -> tuple[int, int]:
    """Where the signed entity (of doctor_message) lies in a detached multipart/signed message."""
    _, entity = engines.split_message(doctor_message())
    start = message.index(entity)
    return start, start + len(entity)


@given(st.binary(max_size=4096))
@BOUNDED
def test_random_bytes_yield_a_verdict(pki: Pki, raw: bytes) -> None:
    assert _verdict(pki, raw).decision is Decision.REJECT


@given(
    st.lists(st.sampled_from([b"From: a@b.fr", b"Content-Type: multipart/signed; boundary=x", b"--x", b"--x--",
                              b"Content-Type: application/pkcs7-signature", b"", b"MIIB", b"\t folded"]),
             max_size=30)
)
@BOUNDED
def test_random_mime_skeletons_yield_a_verdict(pki: Pki, lines: list[bytes]) -> None:
    assert _verdict(pki, b"\r\n".join(lines)).decision is Decision.REJECT


@pytest.mark.parametrize("case", SUPPORTED, ids=lambda c: c.id)
@given(data=st.data())
@PER_CASE
def test_mutations_anywhere_yield_a_verdict(case: EngineCase, signatory: Signatory, pki: Pki, data: st.DataObject) -> None:
    signed = signatory.sign(case)
    mutation = data.draw(mutations(0, len(signed)))
    _verdict(pki, mutation.apply(signed))


@pytest.mark.parametrize("case", DETACHED, ids=lambda c: c.id)
@given(data=st.data())
@PER_CASE
def test_mutations_of_the_signed_bytes_are_never_accepted(
    case: EngineCase, signatory: Signatory, pki: Pki, data: st.DataObject
) -> None:
    signed = signatory.sign(case)
    start, stop = _signed_span(signed)
    mutation = data.draw(mutations(start, stop))
    mutated = mutation.apply(signed)
    assert mutated != signed
    verdict = _verdict(pki, mutated)
    assert verdict.decision is Decision.REJECT, (mutation, verdict)
