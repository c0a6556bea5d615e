"""Where the token PIN comes from: an environment variable or a file only the service user reads.

A PIN never sits in the configuration itself, and a PIN file that group or
others could read is refused rather than trusted.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import KeyErrorCode, KeyStoreError


@dataclass(frozen=True, slots=True)
class PinSource:
    env: str | None = None  # name of the environment variable holding the PIN
    file: Path | None = None  # file holding the PIN (mode 0400 or 0600)

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise KeyStoreError(KeyErrorCode.CONFIG, "give exactly one PIN source: an environment variable or a file")

    def __str__(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def read(self) -> str:
        pin = _from_env(self.env) if self.env else _from_file(self.file)  # type: ignore[arg-type]
        if not pin:
            raise KeyStoreError(KeyErrorCode.PIN_UNAVAILABLE, f"the PIN in {self} is empty")
        return pin


def _from_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise KeyStoreError(KeyErrorCode.PIN_UNAVAILABLE, f"environment variable {name} is not set")
    return value


def _from_file(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            # Check the opened file, not the path, so a swap between check and read cannot fool us.
            mode = os.fstat(handle.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyStoreError(
                    KeyErrorCode.PIN_FILE_PERMISSIONS,
                    f"PIN file {path} is accessible to group or others (mode {stat.filemode(mode)}); chmod 600 it",
                )
            data = handle.read(4096)
    except OSError as error:
        raise KeyStoreError(KeyErrorCode.PIN_UNAVAILABLE, f"PIN file {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise KeyStoreError(KeyErrorCode.PIN_UNAVAILABLE, f"PIN file {path} is not UTF-8 text") from None
