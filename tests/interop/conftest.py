"""Shared fixtures: one test PKI and the messages each engine signs with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest

from tests import engines
from tests.engines import DOCTOR, Pki, SigningKey


@dataclass(frozen=True)
class EngineCase:
    """One engine with one algorithm choice, signing as the named PKI signer."""

    engine: str
    signer: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.engine}-{self.label or self.signer}"


_SIGN: dict[str, Callable[..., bytes]] = {
    "openssl": engines.sign_openssl,
    "nss": engines.sign_nss,
    "cryptography": engines.sign_cryptography,
}

# Every engine with every algorithm it can produce and the relay supports.
SUPPORTED: tuple[EngineCase, ...] = (
    EngineCase("openssl", "rsa", {"md": "sha256"}, "rsa-sha256"),
    EngineCase("openssl", "rsa", {"md": "sha384"}, "rsa-sha384"),
    EngineCase("openssl", "rsa", {"md": "sha512"}, "rsa-sha512"),
    EngineCase("openssl", "rsa", {"md": "sha256", "pss_saltlen": 32}, "rsapss-sha256-salt32"),
    EngineCase("openssl", "rsa", {"md": "sha512", "pss_saltlen": 64}, "rsapss-sha512-salt64"),
    EngineCase("openssl", "rsa", {"md": "sha256", "pss_saltlen": 20}, "rsapss-sha256-salt20"),
    EngineCase("openssl", "p256", {"md": "sha256"}, "ecdsa-p256-sha256"),
    EngineCase("openssl", "p384", {"md": "sha384"}, "ecdsa-p384-sha384"),
    EngineCase("openssl", "rsa", {"keyid": True}, "rsa-keyid"),
    EngineCase("openssl", "rsa", {"opaque": True}, "rsa-opaque"),
    EngineCase("openssl", "p256", {"opaque": True, "keyid": True}, "ecdsa-p256-opaque-keyid"),
    EngineCase("gpgsm", "rsa", {}, "rsa-sha256"),
    EngineCase("gpgsm", "rsa", {"armor": True}, "rsa-sha256-armor"),
    EngineCase("gpgsm", "rsa", {"md": "sha384"}, "rsa-sha384"),
    EngineCase("gpgsm", "rsa", {"md": "sha512"}, "rsa-sha512"),
    EngineCase("nss", "rsa", {"md": "SHA256"}, "rsa-sha256"),
    EngineCase("nss", "rsa", {"md": "SHA384"}, "rsa-sha384"),
    EngineCase("nss", "rsa", {"md": "SHA512"}, "rsa-sha512"),
    EngineCase("nss", "p256", {"md": "SHA256"}, "ecdsa-p256-sha256"),
    EngineCase("nss", "p384", {"md": "SHA384"}, "ecdsa-p384-sha384"),
    EngineCase("cryptography", "rsa", {"md": "sha256"}, "rsa-sha256"),
    EngineCase("cryptography", "rsa", {"md": "sha512"}, "rsa-sha512"),
    EngineCase("cryptography", "rsa", {"md": "sha256", "pss": True}, "rsapss-sha256"),
    EngineCase("cryptography", "p256", {"md": "sha256"}, "ecdsa-p256-sha256"),
    EngineCase("cryptography", "p384", {"md": "sha384"}, "ecdsa-p384-sha384"),
    EngineCase("cryptography", "rsa", {"opaque": True}, "rsa-opaque"),
)

# One plain case per engine, for tests that vary something else.
ONE_PER_ENGINE: tuple[EngineCase, ...] = tuple(
    next(c for c in SUPPORTED if c.engine == name) for name in ("openssl", "gpgsm", "nss", "cryptography")
)


def doctor_message(sender: str = f"Dr Jean Dupont <{DOCTOR}>", **fields: Any) -> bytes:
    return engines.text_message(sender, **fields)


class Signatory:
    """Signs on demand and remembers: gpgsm and NSS cost a process start or more
    per call, so each signed message is made once, and each gpgsm signer's
    GnuPG home (with its running agent) serves every gpgsm case."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self._memo: dict[tuple[str, str, str, bytes], bytes] = {}
        self._gpgsm: dict[str, engines.GpgsmHome] = {}

    def sign(self, case: EngineCase, message: bytes | None = None, signer: str | None = None) -> bytes:
        message = message if message is not None else doctor_message()
        name = signer or case.signer
        key = (case.engine, name, repr(sorted(case.options.items())), message)
        if key not in self._memo:
            self._memo[key] = self._sign(case, message, name)
        return self._memo[key]

    def _sign(self, case: EngineCase, message: bytes, name: str) -> bytes:
        signing_key: SigningKey = self.pki.signers[name]
        if case.engine == "gpgsm":
            if name not in self._gpgsm:
                self._gpgsm[name] = engines.GpgsmHome(signing_key)
            return self._gpgsm[name].sign(message, **case.options)
        return _SIGN[case.engine](message, signing_key, **case.options)

    def close(self) -> None:
        for home in self._gpgsm.values():
            home.close()


@pytest.fixture(scope="session")
def pki() -> Pki:
    return engines.build_pki()


@pytest.fixture(scope="session")
def signatory(pki: Pki) -> Iterator[Signatory]:
    signing = Signatory(pki)
    yield signing
    signing.close()
