"""Inbound DKIM verification: the [dkim_verify] section and the resolver it builds.

Mail arriving from outside (MX and loopback listeners) has its DKIM
signatures checked as received, before any decryption, and the results go
into the Authentication-Results field beside smime=. A failed signature
refuses nothing: DKIM says who handled the message, the S/MIME signature
is what the relay judges. Keys come from a static table (the trust space's
own domains, tests) and, unless turned off, from the DNS for the rest.

    [dkim_verify]
    enabled = true                 # default
    dns = true                     # look up names the static records lack
    dns_timeout = 5.0
    records_file = "dkim-records.txt"
    [dkim_verify.records]
    "rsa2026._domainkey.hopital-test.mssante.fr" = "v=DKIM1; k=rsa; p=..."
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from ..dkim import DkimResult, TxtResolver, dns_resolver, static_resolver, verify_dkim
from ..dkim.records import parse_txt_records, record_name
from .config import ConfigError, ConfigSource, _Section

DEFAULT_DNS_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class DkimVerifyConfig:
    enabled: bool = True
    records: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # "selector._domainkey.domain" -> TXT value
    dns: bool = True
    dns_timeout: float = DEFAULT_DNS_TIMEOUT


def parse_dkim_verify(table: Any, source: ConfigSource) -> DkimVerifyConfig:
    section = _Section(table, ("dkim_verify",), source)
    enabled = section.boolean("enabled", True)
    dns = section.boolean("dns", True)
    timeout = section.number("dns_timeout", DEFAULT_DNS_TIMEOUT, minimum=0.1)
    records = _inline_records(section)
    records_file = section.path("records_file", source.path.parent, None)
    section.finish()
    if records_file is not None:
        for name, value in _file_records(section, records_file).items():
            if name in records:
                section.fail("records_file", f"{name} is also in [dkim_verify.records]")
            records[name] = value
    return DkimVerifyConfig(enabled, MappingProxyType(records), dns, timeout)


def _inline_records(section: _Section) -> dict[str, str]:
    table = section._get("records", {})
    if not isinstance(table, dict) or not all(isinstance(v, str) and v for v in table.values()):
        section.fail("records", 'must be a table "selector._domainkey.domain" = "v=DKIM1; ..."')
    records: dict[str, str] = {}
    for name, value in table.items():
        try:
            normal = record_name(name)
        except ValueError:
            section.fail("records", f"not `selector._domainkey.domain`: {name!r}")
        if normal in records:
            section.fail("records", f"{normal} is given twice")
        records[normal] = value  # as written: no zone-file quoting to undo
    return records


def _file_records(section: _Section, path: Path) -> dict[str, str]:
    try:
        return parse_txt_records(path.read_text(encoding="ascii"))
    except (OSError, UnicodeError) as error:
        section.fail("records_file", f"{path}: {getattr(error, 'strerror', None) or error}")
    except ValueError as error:
        section.fail("records_file", f"{path} {error}")


def chained_resolver(*resolvers: TxtResolver) -> TxtResolver:
    """The first resolver that knows the name answers; each keeps its own timeout unless the caller gives one."""

    def resolve(name: bytes | str, *timeout: float) -> bytes | None:
        for resolver in resolvers:
            record = resolver(name, *timeout)
            if record is not None:
                return record
        return None

    return resolve


class InboundDkim:
    """Verifies every DKIM signature of a received message; CPU work, run it in a thread."""

    def __init__(self, config: DkimVerifyConfig) -> None:
        static = static_resolver(config.records)
        self.resolver = chained_resolver(static, _system_dns(config.dns_timeout)) if config.dns else static

    def verify(self, data: bytes) -> tuple[DkimResult, ...]:
        return verify_dkim(data, self.resolver)


def _system_dns(timeout: float) -> TxtResolver:
    import dns.resolver

    try:
        return dns_resolver(timeout=timeout)
    except dns.resolver.NoResolverConfiguration:
        # A host without /etc/resolv.conf: say so at start rather than at the first message.
        raise ConfigError("[dkim_verify] dns = true but this host has no DNS resolver configured; set dns = false") from None


def inbound_dkim(config: DkimVerifyConfig) -> InboundDkim | None:
    return InboundDkim(config) if config.enabled else None
