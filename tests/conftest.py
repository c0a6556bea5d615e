"""Fixtures shared by the whole suite.

pki  the session-wide test PKI (tests/pki.py: IGC-Santé and Direct hierarchies,
     leaves, CRLs and bundles at fixed dates).
now  the fixed evaluation time at which every "valid" fixture is valid.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

import pytest

from relay.audit import log
from tests.pki import NOW, HealthPki


@pytest.fixture(scope="session")
def pki() -> HealthPki:
    return HealthPki()


@pytest.fixture
def now() -> dt.datetime:
    return NOW


@pytest.fixture
def audit_file(tmp_path: Path) -> Iterator[Path]:
    """Audit events of this process go to this file for the test."""
    path = tmp_path / "audit.jsonl"
    log.configure(path)
    yield path
    log.configure(None)
