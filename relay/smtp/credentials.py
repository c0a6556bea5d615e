"""The submission users file: one `user:scrypt$N$r$p$salt$hash` line per user.

Hashes are scrypt (hashlib) with a per-user random salt; comparison is
constant-time. A line is never written with a password in clear, and the
file is replaced atomically so the running service never reads half of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..trust.atomic import atomic_write

# RFC 7914 §2 parameters: 16 MiB of memory per check, tens of milliseconds.
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


class CredentialsError(ValueError):
    """The users file or a user name cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def create(cls, password: str) -> PasswordHash:
        salt = secrets.token_bytes(16)
        return cls(_N, _R, _P, salt, _scrypt(password.encode(), salt, _N, _R, _P))

    def matches(self, password: bytes) -> bool:
        candidate = _scrypt(password, self.salt, self.n, self.r, self.p)
        return hmac.compare_digest(candidate, self.digest)

    def encode(self) -> str:
        b64 = base64.b64encode
        return f"scrypt${self.n}${self.r}${self.p}${b64(self.salt).decode()}${b64(self.digest).decode()}"

    @classmethod
    def decode(cls, text: str) -> PasswordHash:
        scheme, n, r, p, salt, digest = text.split("$")
        if scheme != "scrypt":
            raise ValueError(f"unknown hash scheme {scheme!r}")
        return cls(int(n), int(r), int(p), base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True))


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


# A fixed hash checked for unknown users, so that timing does not tell
# which user names exist.
_DUMMY = PasswordHash(_N, _R, _P, b"\0" * 16, b"\0" * 32)


@dataclass(frozen=True)
class Credentials:
    users: Mapping[str, PasswordHash]

    def check(self, user: bytes, password: bytes) -> str | None:
        """The authenticated user name, or None."""
        try:
            name = user.decode("utf-8")
        except UnicodeDecodeError:
            name = ""
        known = self.users.get(name)
        ok = (known or _DUMMY).matches(password)
        return name if ok and known is not None else None


def validate_user(name: str) -> str:
    if not name or any(c in name for c in ":\r\n\0") or name != name.strip():
        raise CredentialsError(f"invalid user name {name!r} (no ':', spaces at the ends or control characters)")
    return name


def load_credentials(path: Path | None) -> Credentials:
    if path is None or not path.exists():
        return Credentials(MappingProxyType({}))
    return Credentials(MappingProxyType(_read(path)))


def _read(path: Path) -> dict[str, PasswordHash]:
    users: dict[str, PasswordHash] = {}
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialsError(f"{path}: {error}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        try:
            if not sep:
                raise ValueError("expected user:hash")
            users[validate_user(name)] = PasswordHash.decode(encoded)
        except (ValueError, CredentialsError) as error:
            raise CredentialsError(f"{path}:{number}: {error}") from None
    return users


def write_credentials(path: Path, users: Mapping[str, PasswordHash]) -> None:
    body = "".join(f"{name}:{users[name].encode()}\n" for name in sorted(users))
    atomic_write(path, body.encode("utf-8"))  # a 0600 temporary file, fsynced, renamed over the old one


def edit_credentials(path: Path) -> dict[str, PasswordHash]:
    """The current users as a mutable dict, for add/passwd/remove."""
    return _read(path) if path.exists() else {}
