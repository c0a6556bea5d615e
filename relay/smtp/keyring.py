"""The organisation's keys as the running service uses them: loaded lazily, retried with restraint.

The token may be missing, locked or unplugged when the relay starts, and may
drop its sessions later. Neither stops the service: the messages that need a
key are answered 451 (the client keeps them and retries) and the key is
loaded again on a later message. After a failed login no new one is tried
for `login_retry` seconds, so a wrong PIN is not replayed once per message
until the token locks itself.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..core.smime_decrypt import DecryptionKey
from ..core.smime_sign import SigningKey
from ..keys.config import KeyConfig
from ..keys.decrypt import load_token_decryption_key, software_decryption_key
from ..keys.errors import KeyErrorCode, KeyStoreError
from ..keys.pkcs11_token import Pkcs11Token
from ..keys.token_keys import load_token_key
from .crypto_config import KeysConfig

T = TypeVar("T")


class KeyRing:
    """Thread-safe: called from the worker threads that sign and decrypt."""

    def __init__(self, config: KeysConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._token = Pkcs11Token(config.token) if config.token else None
        self._signing: SigningKey | None = None
        self._decryption: tuple[DecryptionKey, ...] | None = None
        self._failure: tuple[float, KeyStoreError] | None = None

    @property
    def signs(self) -> bool:
        return self.config.sign_label is not None

    @property
    def decrypts(self) -> bool:
        return self.config.decrypts

    def signing_key(self) -> SigningKey:
        """The key that signs on behalf of senders; KeyStoreError when it cannot be had now."""
        if self.config.sign_label is None:
            raise KeyStoreError(KeyErrorCode.CONFIG, "no sign_label in [keys]")
        if self._signing is None:
            label = self.config.sign_label
            self._signing = self._load(lambda token: load_token_key(token, KeyConfig(label, self.config.rsa_pss)))
        return self._signing

    def decryption_keys(self) -> tuple[DecryptionKey, ...]:
        if self._decryption is None:
            if self.config.decrypt_key_file and self.config.decrypt_cert_file:
                self._decryption = (_file_decryption_key(self.config.decrypt_key_file, self.config.decrypt_cert_file),)
            elif self.config.decrypt_label:
                label = self.config.decrypt_label
                self._decryption = (self._load(lambda token: load_token_decryption_key(token, label)),)
            else:
                self._decryption = ()
        return self._decryption

    def forget(self) -> None:
        """Drop the loaded keys (after a token failure): the next use loads them again."""
        with self._lock:
            self._signing = None
            if self.config.decrypt_label:
                self._decryption = None

    def close(self) -> None:
        if self._token is not None:
            self._token.close()

    def _load(self, load: Callable[[Pkcs11Token], T]) -> T:
        assert self._token is not None  # the configuration requires a token for a label
        with self._lock:
            if self._failure is not None:
                failed_at, error = self._failure
                if self._clock() - failed_at < self.config.login_retry:
                    raise error
            try:
                loaded = load(self._token)
            except KeyStoreError as error:
                self._failure = (self._clock(), error)
                self._token.close()  # the next attempt logs in afresh (e.g. with a corrected PIN file)
                raise
            self._failure = None
            return loaded


def _file_decryption_key(key_file: Path, cert_file: Path) -> DecryptionKey:
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError, TypeError) as error:
        raise KeyStoreError(KeyErrorCode.KEY_NOT_FOUND, f"cannot load the decryption key files: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyStoreError(KeyErrorCode.KEY_UNSUPPORTED, f"{key_file}: only RSA keys decrypt (key transport)")
    return software_decryption_key(key, certificate)
