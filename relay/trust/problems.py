"""Problems found while reading the trust directory, collected rather than raised.

The loader gathers every problem of every file before deciding, so an
administrator sees all of them at once and a snapshot is never half built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


class ConfigError(Exception):
    """The configuration or trust directory cannot be loaded; one problem per line."""

    def __init__(self, problems: Sequence[str], warnings: Sequence[str] = ()) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)
        self.warnings = tuple(warnings)  # found on the way; worth showing with the errors


@dataclass
class Problems:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}" if where else message)

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}" if where else message)

    def as_error(self) -> ConfigError:
        return ConfigError(self.errors, self.warnings)

    def raise_if_any(self) -> None:
        if self.errors:
            raise self.as_error()
