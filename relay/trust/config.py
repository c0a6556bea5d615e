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


# The SMTP service's sections (relay.smtp.config reads and checks them).
SERVICE_SECTIONS = ("service", "listeners", "limits", "queue", "delivery", "audit", "metrics", "keys", "dkim", "dkim_verify", "mdn")

_SECTIONS: dict[str, SectionValidator] = {name: _validated_by_service for name in SERVICE_SECTIONS}


def register_section(name: str, validator: SectionValidator) -> None:
    """Declare (or replace the validator of) a top-level section of relay.toml."""
    _SECTIONS[name] = validator


@dataclass(frozen=True)
class RelayConfig:
    path: Path
    trust_dir: Path
    pid_file: Path | None  # where the running service writes its pid; `relay reload` signals it
    source: TomlFile

    def has_service_sections(self) -> bool:
        return any(name in self.source.data for name in SERVICE_SECTIONS)


def read_config(source: TomlFile, problems: Problems) -> RelayConfig:
    top = Table(source, (), source.data, problems)
    trust_dir = top.string("trust_dir", required=True) or "trust"
    pid_file = top.string("pid_file")
    for name in list(source.data):
        validator = _SECTIONS.get(name)
        if validator is None:
            continue
        value = source.data[name]
        top.mark_known(name)
        tables = value if isinstance(value, list) else [value]
        for index, item in enumerate(tables):
            keypath = (name, index) if isinstance(value, list) else (name,)
            validator(Table(source, keypath, item, problems))
    top.done()
    base = source.path.parent
    return RelayConfig(source.path, base / trust_dir, base / pid_file if pid_file else None, source)
