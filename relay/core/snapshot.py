"""The immutable trust snapshot: bundles, domains, address overrides, mailboxes.

Built by relay.trust (the edge that reads files) and swapped whole on reload;
everything here is plain data plus O(1) lookups, no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Mapping, Sequence

from cryptography import x509

from .bundle import Bundle


class TlsMode(StrEnum):
    NONE = "none"  # plain SMTP: only towards loopback next hops
    STARTTLS = "starttls"
    IMPLICIT = "tls"


@dataclass(frozen=True, slots=True)
class NextHop:
    host: str
    port: int
    tls: TlsMode = TlsMode.STARTTLS
    verify_bundle: str | None = None  # bundle whose anchors verify the next hop's certificate
    verify_dn: str | None = None  # exact subject DN expected (RFC 4514), when pinned

    def __str__(self) -> str:
        return f"smtp://{self.host}:{self.port} ({self.tls})"


class EncryptMode(StrEnum):
    """Whether mail to a recipient leaves S/MIME encrypted (the directory holding its certificate)."""

    NEVER = "never"
    WHEN_POSSIBLE = "when-possible"  # encrypted when every recipient of the message has a certificate
    REQUIRED = "required"  # a recipient without a certificate is refused


@dataclass(frozen=True, slots=True)
class MessagePolicy:
    require_signature: bool = True
    # Authenticated internal senders whose unsigned mail is accepted.
    unsigned_senders: frozenset[str] = frozenset()
    sign_on_behalf: bool = False  # the relay signs for these senders (keys in the HSM)
    envelope_check: bool = True  # MAIL FROM / RCPT TO must agree with From / To / Cc
    # For a local domain: acknowledge delivered messages that ask for it (RFC 8098 `processed` MDN).
    send_mdn: bool = False
    encrypt: EncryptMode = EncryptMode.NEVER
    # The receiver opens AuthEnvelopedData (AES-256-GCM); otherwise EnvelopedData AES-256-CBC.
    encryption_aead: bool = False


@dataclass(frozen=True, slots=True)
class DomainRule:
    name: str
    local: bool
    signer_bundles: tuple[str, ...]
    next_hop: NextHop | None = None
    operator_dns: frozenset[str] = frozenset()  # MSSanté DNCertificatOperateur, normalised
    policy: MessagePolicy = MessagePolicy()
    origin: str = ""  # "file:line" (or "whitelist") where the rule was declared


@dataclass(frozen=True, slots=True)
class AddressRule:
    """Per-address overrides; None keeps the domain's value."""

    address: str
    signer_bundles: tuple[str, ...] | None = None
    next_hop: NextHop | None = None
    policy: MessagePolicy | None = None
    origin: str = ""


class MailboxKind(StrEnum):
    PERSONAL = "PER"
    ORGANISATION = "ORG"
    APPLICATION = "APP"
    PRACTICE = "CAB"


@dataclass(frozen=True, slots=True)
class MailboxEntry:
    address: str
    kind: MailboxKind
    national_id: str | None = None  # "8"+RPPS or "0"+ADELI for PER mailboxes
    profession_code: str | None = None
    structure_id: str | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """Where mail for one address goes and why."""

    address: str
    domain: DomainRule | None
    override: AddressRule | None
    next_hop: NextHop | None
    policy: MessagePolicy
    signer_bundles: tuple[str, ...]

    @property
    def known(self) -> bool:
        return self.domain is not None

    @property
    def local(self) -> bool:
        return self.domain is not None and self.domain.local


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, eq=False)
class Snapshot:
    version: str  # digest of the loaded files; changes whenever trust changes
    loaded_at: dt.datetime
    bundles: Mapping[str, Bundle] = field(default_factory=dict)
    domains: Mapping[str, DomainRule] = field(default_factory=dict)
    addresses: Mapping[str, AddressRule] = field(default_factory=dict)
    mailboxes: Mapping[str, MailboxEntry] = field(default_factory=dict)
    # Recipients' encryption certificates by address, validated when the directory was loaded.
    recipients: Mapping[str, x509.Certificate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("bundles", "domains", "addresses", "mailboxes", "recipients"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def route(self, address: str) -> Route:
        address = normalise_address(address)
        domain = self.domains.get(address.rpartition("@")[2])
        override = self.addresses.get(address)
        policy = (override.policy if override and override.policy else None) or (
            domain.policy if domain else MessagePolicy()
        )
        return Route(
            address=address,
            domain=domain,
            override=override,
            next_hop=(override.next_hop if override and override.next_hop else None)
            or (domain.next_hop if domain else None),
            policy=policy,
            signer_bundles=_signer_bundles(domain, override),
        )

    # TrustView, for the verification core.
    def signer_bundles(self, sender: str) -> Sequence[Bundle]:
        names = self.route(sender).signer_bundles
        return tuple(self.bundles[n] for n in names if n in self.bundles)

    def national_id_of(self, address: str) -> str | None:
        entry = self.mailbox(address)
        return entry.national_id if entry else None

    def mailbox(self, address: str) -> MailboxEntry | None:
        return self.mailboxes.get(normalise_address(address))

    def encryption_certificate(self, address: str) -> x509.Certificate | None:
        return self.recipients.get(normalise_address(address))


def _signer_bundles(domain: DomainRule | None, override: AddressRule | None) -> tuple[str, ...]:
    # An address rule's empty list is a decision (no bundle trusts this
    # sender), not an absence: only None falls back to the domain.
    if override is not None and override.signer_bundles is not None:
        return override.signer_bundles
    return domain.signer_bundles if domain else ()


def normalise_address(address: str) -> str:
    """Lower-case the domain; keep the local part as given (RFC 5321 §2.4)."""
    local, at, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if at else address.strip()
