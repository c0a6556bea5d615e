"""A PKCS#11 token shared by worker threads: one login, a bounded pool of sessions, recovery.

PKCS#11 login state belongs to the application, not to a session: the token
is logged in once through a dedicated session, and pooled sessions opened
afterwards share that login. When the token drops the sessions (device reset,
module finalized, session closed under us) the first caller to notice closes
everything, re-opens and logs in again, once; if that does not help the
error is `session-lost`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11

from .config import TokenConfig
from .errors import KeyErrorCode, KeyStoreError
from .module import Module, load_module

T = TypeVar("T")

# Errors after which the session, the login or the whole module may be gone.
# A bare PKCS11Error is how python-pkcs11 reports CKR_CRYPTOKI_NOT_INITIALIZED.
_LOST = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.UserNotLoggedIn,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
    p11.GeneralError,
)


def _is_lost(error: BaseException) -> bool:
    return isinstance(error, _LOST) or type(error) is p11.PKCS11Error


@dataclass(eq=False)
class PooledSession:
    """One open session and the key objects already looked up through it."""

    session: Any  # pkcs11.Session
    generation: int
    keys: dict[str, Any] = field(default_factory=dict)

    def private_key(self, label: str) -> Any:
        key = self.keys.get(label)
        if key is None:
            key = self.keys[label] = _find_one(self.session, ObjectClass.PRIVATE_KEY, label)
        return key


class _SessionLost(Exception):
    def __init__(self, generation: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.generation = generation
        self.cause = cause


class Pkcs11Token:
    """Thread-safe access to one token; use as a context manager or call close()."""

    def __init__(self, config: TokenConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.sessions)
        self._idle: list[PooledSession] = []
        self._generation = 0
        self._token: Any = None
        self._login: Any = None
        self._module: Module | None = None

    def __enter__(self) -> Pkcs11Token:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def label(self) -> str:
        return self.config.token_label

    def open(self) -> None:
        """Find the token and log in; errors surface here rather than at the first signature."""
        with self._lock:
            if self._token is None:
                self._connect()

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def run(self, operation: Callable[[PooledSession], T]) -> T:
        """Run operation on a pooled session; recover once from a lost session."""
        with self._slots:
            try:
                return self._attempt(operation)
            except _SessionLost as first:
                self._recover(first.generation)
            try:
                return self._attempt(operation)
            except _SessionLost as second:
                raise KeyStoreError(
                    KeyErrorCode.SESSION_LOST,
                    f"token {self.label!r} still unusable after re-login: {_describe(second.cause)}",
                ) from None

    def mechanisms(self) -> frozenset[Any]:
        """The mechanisms the token's slot offers."""
        return self.run(lambda pooled: frozenset(pooled.session.token.slot.get_mechanisms()))

    @contextmanager
    def write_session(self) -> Iterator[Any]:
        """A read-write session under the shared login, for importing objects."""
        self.open()
        session = _call(lambda: self._token.open(rw=True), f"token {self.label!r}")
        try:
            yield session
        finally:
            _close_quietly(session)

    # --- pool -------------------------------------------------------------

    def _attempt(self, operation: Callable[[PooledSession], T]) -> T:
        pooled = self._take()
        try:
            with self._serialised():
                result = operation(pooled)
        except BaseException as error:
            if _is_lost(error):
                _close_quietly(pooled.session)
                raise _SessionLost(pooled.generation, error) from None
            self._give_back(pooled)
            raise
        self._give_back(pooled)
        return result

    def _serialised(self) -> Any:
        serial = self._module.serial if self._module else None
        return serial or nullcontext()

    def _take(self) -> PooledSession:
        with self._lock:
            if self._token is None:
                self._connect()
            if self._idle:
                return self._idle.pop()
            token, generation = self._token, self._generation
        try:
            # No PIN: the session inherits the application's login.
            with self._serialised():
                return PooledSession(token.open(), generation)
        except Exception as error:
            if _is_lost(error):
                raise _SessionLost(generation, error) from None
            raise as_key_error(error, f"token {self.label!r}") from None

    def _give_back(self, pooled: PooledSession) -> None:
        with self._lock:
            if pooled.generation == self._generation and self._token is not None:
                self._idle.append(pooled)
                return
        _close_quietly(pooled.session)

    def _recover(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # another thread already re-logged in since this session was opened
            self._disconnect()
            self._connect()

    # --- login (called with the lock held) --------------------------------

    def _connect(self) -> None:
        self._module = load_module(self.config.module)
        token = _find_token(self._module.lib, self.label)
        login = self._log_in(token)
        self._token, self._login = token, login

    def _log_in(self, token: Any) -> Any:
        if self.config.pin is None:
            return None
        pin = self.config.pin.read()
        try:
            return token.open(user_pin=pin)
        except p11.UserAlreadyLoggedIn:
            # Another handle in this process holds the login; share it.
            return None
        except Exception as error:
            raise as_key_error(error, f"token {self.label!r}") from None

    def _disconnect(self) -> None:
        for pooled in self._idle:
            _close_quietly(pooled.session)
        self._idle.clear()
        if self._login is not None:
            _close_quietly(self._login)
        self._token = self._login = None
        self._generation += 1


# --- module and object lookup -------------------------------------------


def _find_token(lib: Any, label: str) -> Any:
    try:
        return lib.get_token(token_label=label)
    except p11.NoSuchToken:
        raise KeyStoreError(KeyErrorCode.TOKEN_NOT_FOUND, f"no token labelled {label!r} in {lib.so}") from None
    except p11.MultipleTokensReturned:
        raise KeyStoreError(KeyErrorCode.TOKEN_NOT_FOUND, f"several tokens labelled {label!r} in {lib.so}") from None
    except p11.PKCS11Error as error:
        raise as_key_error(error, f"token {label!r}") from None


def _find_one(session: Any, object_class: ObjectClass, label: str) -> Any:
    found = list(session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label}))
    if len(found) != 1:
        what = "private key" if object_class is ObjectClass.PRIVATE_KEY else "certificate"
        many = "several objects" if found else "nothing"
        raise KeyStoreError(KeyErrorCode.KEY_NOT_FOUND, f"{many} where one {what} labelled {label!r} should be")
    return found[0]


def certificate_der(session: Any, label: str) -> bytes:
    return bytes(_find_one(session, ObjectClass.CERTIFICATE, label)[Attribute.VALUE])


def _close_quietly(session: Any) -> None:
    try:
        session.close()
    except p11.PKCS11Error:
        pass  # already gone with the token; nothing left to release


def _call(action: Callable[[], T], what: str) -> T:
    try:
        return action()
    except p11.PKCS11Error as error:
        raise as_key_error(error, what) from None


_CODES: tuple[tuple[type[p11.PKCS11Error], KeyErrorCode], ...] = (
    (p11.PinIncorrect, KeyErrorCode.PIN_INCORRECT),
    (p11.PinInvalid, KeyErrorCode.PIN_INCORRECT),
    (p11.PinLenRange, KeyErrorCode.PIN_INCORRECT),
    (p11.PinLocked, KeyErrorCode.PIN_LOCKED),
    (p11.PinExpired, KeyErrorCode.PIN_LOCKED),
    (p11.NoSuchKey, KeyErrorCode.KEY_NOT_FOUND),
    (p11.TokenNotPresent, KeyErrorCode.TOKEN_NOT_FOUND),
    (p11.TokenNotRecognised, KeyErrorCode.TOKEN_NOT_FOUND),
    (p11.MechanismInvalid, KeyErrorCode.KEY_UNSUPPORTED),
    (p11.KeyTypeInconsistent, KeyErrorCode.KEY_UNSUPPORTED),
)


def as_key_error(error: BaseException, what: str) -> KeyStoreError:
    if isinstance(error, KeyStoreError):
        return error
    for kind, code in _CODES:
        if isinstance(error, kind):
            return KeyStoreError(code, f"{what}: {_describe(error)}")
    if _is_lost(error):
        return KeyStoreError(KeyErrorCode.SESSION_LOST, f"{what}: {_describe(error)}")
    return KeyStoreError(KeyErrorCode.SIGN_FAILED, f"{what}: {_describe(error)}")


def _describe(error: BaseException) -> str:
    # python-pkcs11 exceptions often carry no message; the class name is the CKR code.
    return f"{type(error).__name__} {error}".strip()
