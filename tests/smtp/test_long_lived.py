"""Start-up objects set aside from the cyclic collector (what a reload replaces still goes:
tests/trust/test_trust_reload.py)."""

from __future__ import annotations

import gc

import pytest

from relay.smtp.service import set_aside_long_lived


@pytest.fixture(autouse=True)
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session runs as before


def test_what_is_alive_at_start_is_set_aside() -> None:
    assert gc.get_freeze_count() == 0
    set_aside_long_lived()
    assert gc.get_freeze_count() > 0
