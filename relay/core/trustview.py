"""What the core asks of a trust snapshot, and a minimal in-memory one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from .bundle import Bundle


class TrustView(Protocol):
    """The read-only questions verification asks of the trust directory."""

    def signer_bundles(self, sender: str) -> Sequence[Bundle]:
        """Bundles trusted for signers of mail from this address (in order)."""
        ...

    def national_id_of(self, address: str) -> str | None:
        """The directory's national identifier for a mailbox, when it knows one."""
        ...


@dataclass(frozen=True)
class StaticTrust:
    """One set of bundles for every sender: the ad-hoc `relay verify` case."""

    bundles: tuple[Bundle, ...]
    national_ids: Mapping[str, str] = field(default_factory=dict)

    def signer_bundles(self, sender: str) -> Sequence[Bundle]:
        return self.bundles

    def national_id_of(self, address: str) -> str | None:
        return self.national_ids.get(address.lower())
