"""Frozen dataclasses that cross process boundaries pickle as their constructor and values."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pytest

from relay.core.pickled import by_fields
from relay.core.reasons import Reason
from relay.core.verdict import SignerIdentity, Verdict
from relay.smtp.decide import Accepted, Judgement, Refused, Transaction
from relay.smtp.replies import Refusal


@by_fields
@dataclass(frozen=True, slots=True)
class Pair:
    left: int
    right: str = "r"


@by_fields
@dataclass(frozen=True, slots=True)
class One:
    value: tuple[int, ...]


def test_an_instance_reduces_to_its_class_and_field_values() -> None:
    assert Pair(1, "x").__reduce__() == (Pair, (1, "x"))
    assert One((1, 2)).__reduce__() == (One, ((1, 2),))  # one field: still a tuple of arguments


def test_a_field_outside_the_constructor_is_refused() -> None:
    with pytest.raises(TypeError, match="constructor argument"):

        @by_fields
        @dataclass(frozen=True)
        class Derived:
            value: int
            cached: int = field(init=False, default=0)


WHO = SignerIdentity("CN=DUPONT JEAN", "ab" * 32, "jd@x.fr", "810001234567", "10", None)
JUDGEMENTS = [
    Judgement(Accepted(True, Verdict.accept(WHO, "igc-sante")), "<m@x.fr>", Verdict.accept(WHO, "igc-sante")),
    Judgement(Refused(Reason.CERTIFICATE_REVOKED, "revoked"), None, Verdict.reject(Reason.CERTIFICATE_REVOKED, "revoked", WHO)),
    Judgement(Refused(Refusal.BARE_LINE_ENDING, "bare LF in the data"), None, None),
]


@pytest.mark.parametrize("judgement", JUDGEMENTS)
def test_what_a_worker_answers_comes_back_equal(judgement: Judgement) -> None:
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(judgement, protocol))
        assert judgement.__reduce__()[0] is Judgement  # pickled by its fields (relay.core.pickled)
        assert copy == judgement
        assert type(copy.outcome) is type(judgement.outcome)


def test_what_a_worker_is_sent_comes_back_equal() -> None:
    tx = Transaction("jd@x.fr", ("a@b.fr", "c@d.fr"), None)
    assert pickle.loads(pickle.dumps(tx, pickle.HIGHEST_PROTOCOL)) == tx
