"""Key store configuration: which PKCS#11 module, which token, where the PIN comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import KeyErrorCode, KeyStoreError
from .pin import PinSource

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_SESSIONS = 4


@dataclass(frozen=True, slots=True)
class TokenConfig:
    module: str  # path of the vendor's PKCS#11 shared library
    token_label: str
    pin: PinSource | None  # None: public objects only (listing certificates)
    sessions: int = DEFAULT_SESSIONS  # bound on concurrent sessions (and so on concurrent signatures)

    def __post_init__(self) -> None:
        if not self.module or not self.token_label:
            raise KeyStoreError(KeyErrorCode.CONFIG, "a PKCS#11 module path and a token label are required")
        if self.sessions < 1:
            raise KeyStoreError(KeyErrorCode.CONFIG, f"sessions must be at least 1, not {self.sessions}")

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> TokenConfig:
        """From a TOML table: module, token, pin_env or pin_file, sessions. A literal PIN is refused."""
        if "pin" in table:
            raise KeyStoreError(KeyErrorCode.CONFIG, "a PIN never goes in the configuration: use pin_env or pin_file")
        unknown = set(table) - {"module", "token", "pin_env", "pin_file", "sessions"}
        if unknown:
            raise KeyStoreError(KeyErrorCode.CONFIG, f"unknown key store settings: {', '.join(sorted(unknown))}")
        text = {k: v for k, v in table.items() if k != "sessions"}
        if not all(isinstance(v, str) for v in text.values()):
            raise KeyStoreError(KeyErrorCode.CONFIG, "module, token, pin_env and pin_file are strings")
        sessions = table.get("sessions", DEFAULT_SESSIONS)
        if not isinstance(sessions, int) or isinstance(sessions, bool):
            raise KeyStoreError(KeyErrorCode.CONFIG, f"sessions is a number, not {sessions!r}")
        pin_file = text.get("pin_file")
        return cls(
            module=text.get("module", SOFTHSM2_MODULE),
            token_label=text.get("token", ""),
            pin=PinSource(env=text.get("pin_env"), file=Path(pin_file) if pin_file else None),
            sessions=sessions,
        )


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """One signing key: private key and certificate share the label; CA certificates
    imported with it are labelled `<label>.ca1`, `<label>.ca2`, ..."""

    label: str
    rsa_pss: bool = False  # sign with RSA-PSS rather than PKCS#1 v1.5 (RSA keys only)


def chain_label(label: str, index: int) -> str:
    return f"{label}.ca{index}"
