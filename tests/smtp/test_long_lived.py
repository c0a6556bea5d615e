"""Start-up objects set aside from the cyclic collector, and freed again after a reload."""

from __future__ import annotations

import gc
import weakref

import pytest

from relay.smtp.service import set_aside_long_lived


class Node:
    pass


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()  # the rest of the test session runs as before


def test_what_was_set_aside_is_collected_again_by_the_next_call() -> None:
    cycle = Node()
    cycle.itself = cycle  # type: ignore[attr-defined]  # only the cyclic collector can free it
    alive = weakref.ref(cycle)
    set_aside_long_lived()
    assert gc.get_freeze_count() > 0
    del cycle
    gc.collect()
    assert alive() is not None  # set aside: a full collection does not see it
    set_aside_long_lived()  # as after a reload that replaced the snapshot
    assert alive() is None
