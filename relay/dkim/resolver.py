"""Where DKIM public keys come from: a static table (tests, closed networks) or the DNS.

A resolver has dkimpy's `dnsfunc` shape: called with the record name
(`selector._domainkey.domain.`, bytes) and a timeout, it returns the TXT
record's bytes, or None when there is none. A lookup that could not be made
raises DkimLookupFailed, which verification reports as temperror rather
than as a failed signature.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

TxtResolver = Callable[..., bytes | None]


class DkimLookupFailed(Exception):
    """The DNS could not answer (timeout, no reachable server): try again later."""


def _record_name(name: bytes | str) -> str:
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    return text.rstrip(".").lower()


def static_resolver(table: Mapping[str, str]) -> TxtResolver:
    """Keys from a table {"selector._domainkey.domain": "v=DKIM1; k=rsa; p=..."}; never the network."""
    records = {_record_name(name): value.encode("ascii") for name, value in table.items()}

    def resolve(name: bytes | str, timeout: float = 5) -> bytes | None:
        return records.get(_record_name(name))

    return resolve


def dns_resolver(nameservers: Sequence[str] = (), timeout: float = 5.0) -> TxtResolver:
    """TXT lookups through dnspython: the system's resolvers, or the given ones."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = list(nameservers)

    def resolve(name: bytes | str, timeout: float = timeout) -> bytes | None:
        try:
            answer = resolver.resolve(_record_name(name) + ".", "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as error:
            raise DkimLookupFailed(f"{_record_name(name)}: {type(error).__name__}") from None
        return b"".join(next(iter(answer)).strings)

    return resolve
