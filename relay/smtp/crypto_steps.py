"""The message crypto steps of a running relay, built from [keys], [dkim], [dkim_verify] and [mdn]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..audit.log import audit
from ..core.snapshot import Snapshot
from ..keys.errors import KeyStoreError
from ..queue.mdn import Acknowledgements
from ..queue.spool import Spool
from .config import ServiceConfig
from .crypto_config import load_crypto_config
from .dkim_inbound import InboundDkim, inbound_dkim
from .inbound_crypto import InboundCrypto
from .keyring import KeyRing
from .outbound import Outbound


@dataclass(frozen=True)
class CryptoSteps:
    keyring: KeyRing
    inbound: InboundCrypto | None  # None: nothing to decrypt with
    outbound: Outbound | None  # None: no signing key and no DKIM key
    acknowledgements: Acknowledgements
    dkim_in: InboundDkim | None = None  # None: [dkim_verify] enabled = false

    def close(self) -> None:
        self.keyring.close()


def crypto_steps(config: ServiceConfig, spool: Spool, snapshot: Callable[[], Snapshot]) -> CryptoSteps:
    """Read the sections (ConfigError when wrong) and try the keys once, so that a token
    problem shows in the audit trail at start rather than at the first message."""
    crypto = load_crypto_config(config.path)
    keyring = KeyRing(crypto.keys)
    limits = config.limits.message
    steps = CryptoSteps(
        keyring=keyring,
        inbound=InboundCrypto(keyring, limits) if keyring.decrypts else None,
        outbound=Outbound(keyring, crypto.dkim, limits) if keyring.signs or crypto.dkim.keys else None,
        acknowledgements=Acknowledgements(spool, snapshot, config.hostname, crypto.mdn.reporting_ua, crypto.dkim),
        dkim_in=inbound_dkim(crypto.dkim_verify),
    )
    _try_keys(keyring, sorted(crypto.dkim.keys))
    return steps


def _try_keys(keyring: KeyRing, dkim_domains: list[str]) -> None:
    loaded: dict[str, object] = {"dkim_domains": dkim_domains}
    try:
        if keyring.signs:
            loaded["signing_certificate"] = keyring.signing_key().certificate.subject.rfc4514_string()
        if keyring.decrypts:
            loaded["decryption_keys"] = len(keyring.decryption_keys())
    except KeyStoreError as error:
        audit("keys-unavailable", code=str(error.code), detail=error.detail[:300])
        return
    audit("keys-ready", **loaded)
