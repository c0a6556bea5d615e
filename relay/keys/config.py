"""Key store configuration: which PKCS#11 module, which token, where the PIN comes from.

relay.toml's [keys] section is read by relay.smtp.crypto_config, which builds these.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """One signing key: private key and certificate share the label; CA certificates
    imported with it are labelled `<label>.ca1`, `<label>.ca2`, ..."""

    label: str
    rsa_pss: bool = False  # sign with RSA-PSS rather than PKCS#1 v1.5 (RSA keys only)


def chain_label(label: str, index: int) -> str:
    return f"{label}.ca{index}"
