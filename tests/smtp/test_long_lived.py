"""Start-up objects set aside from the cyclic collector; what a reload replaces still goes."""

from __future__ import annotations

import gc
import weakref

import pytest

from relay.smtp.service import set_aside_long_lived
from tests.smtp.helpers import basic_spec, load_spec, make_pki, write_spec


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()  # the rest of the test session runs as before


def test_what_is_alive_at_start_is_set_aside() -> None:
    set_aside_long_lived()
    assert gc.get_freeze_count() > 0


def test_a_replaced_snapshot_is_freed_by_reference_counting_alone(tmp_path) -> None:
    # Set aside at start, the first snapshot is never seen by the cyclic
    # collector: after a reload it must go without it, so it may hold no cycle.
    snapshot = load_spec(write_spec(tmp_path / "spec.json", basic_spec(make_pki(tmp_path / "tls"), 9)))
    snapshot.route("alice@hospital.test"), snapshot.signer_bundles("alice@hospital.test")
    gone = weakref.ref(snapshot)
    gc.disable()
    try:
        del snapshot
        assert gone() is None
    finally:
        gc.enable()
