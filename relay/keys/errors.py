"""Key store failures, each with a stable code for the CLI, logs and metrics."""

from __future__ import annotations

from enum import StrEnum


class KeyErrorCode(StrEnum):
    """Stable codes: a public contract like the verdict reasons; never rename one."""

    CONFIG = "config"  # the key store configuration is incomplete or contradictory
    PIN_UNAVAILABLE = "pin-unavailable"  # no PIN in the named variable, or the PIN file is unreadable
    PIN_FILE_PERMISSIONS = "pin-file-permissions"  # the PIN file is readable by group or others
    PIN_INCORRECT = "pin-incorrect"
    PIN_LOCKED = "pin-locked"
    MODULE_NOT_FOUND = "module-not-found"  # the PKCS#11 module cannot be loaded
    TOKEN_NOT_FOUND = "token-not-found"
    KEY_NOT_FOUND = "key-not-found"  # no private key or certificate under the label
    KEY_UNSUPPORTED = "key-unsupported"  # a key type or scheme the relay does not sign with
    SESSION_LOST = "session-lost"  # the token stayed unreachable after one re-login
    IMPORT_FAILED = "import-failed"
    SIGN_FAILED = "sign-failed"


class KeyStoreError(Exception):
    """A key operation that cannot be done; `code` says why, `detail` for whom."""

    def __init__(self, code: KeyErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
