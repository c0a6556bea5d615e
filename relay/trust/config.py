"""relay.toml: where the trust directory is, plus the service's own sections.

The file is shared: the trust loader owns `trust_dir`; every other top-level
table belongs to a section registered here with its validator, so a key
nobody knows is always reported instead of silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .problems import Problems
from .tomlsource import Table, TomlFile

SectionValidator = Callable[[Table], None]

DEFAULT_CONFIG = Path("config/relay.toml")


def _validated_by_service(table: Table) -> None:
    """Accepts the section as is; the service validates it when it starts."""
    table.accept_all()


_SECTIONS: dict[str, SectionValidator] = {
    name: _validated_by_service for name in ("service", "listeners", "queue", "limits")
}


def register_section(name: str, validator: SectionValidator) -> None:
    """Declare (or replace the validator of) a top-level section of relay.toml."""
    _SECTIONS[name] = validator


def known_sections() -> tuple[str, ...]:
    return tuple(sorted(_SECTIONS))


@dataclass(frozen=True)
class ServiceConfig:
    path: Path
    trust_dir: Path
    source: TomlFile

    def section(self, name: str) -> dict:
        value = self.source.data.get(name)
        return value if isinstance(value, dict) else {}


def read_config(source: TomlFile, problems: Problems) -> ServiceConfig:
    top = Table(source, (), source.data, problems)
    trust_dir = top.string("trust_dir", required=True) or "trust"
    for name in list(source.data):
        validator = _SECTIONS.get(name)
        if validator is None:
            continue
        value = source.data[name]
        top.table(name)  # marks the key as known; the validator reads it
        tables = value if isinstance(value, list) else [value]
        for index, item in enumerate(tables):
            keypath = (name, index) if isinstance(value, list) else (name,)
            validator(Table(source, keypath, item, problems))
    top.done()
    return ServiceConfig(source.path, (source.path.parent / trust_dir), source)
