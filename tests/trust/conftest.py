from __future__ import annotations

from pathlib import Path

import pytest
from trustfactory import copy_example

from relay.demopki import write_demo_pki


@pytest.fixture(scope="session")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo-pki") / "demo"
    write_demo_pki(folder)
    return folder


@pytest.fixture
def example(demo_pki: Path, tmp_path: Path) -> Path:
    """A private copy of the example configuration on the demo PKI: its relay.toml."""
    return copy_example(demo_pki, tmp_path)
