"""PROXY protocol (HAProxy v1 and v2) for listeners behind a TCP load balancer.

aiosmtpd reads and parses the header (`SMTP(proxy_protocol_timeout=...)`)
and asks the handler's `handle_PROXY` hook whether to go on; this module
says who may send a header and which client address it stands for. A
header is only believed from a configured proxy: anyone else could name
any address and escape the per-address limits or forge the audit trail.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiosmtpd.proxy_protocol import AF, V2_CMD, ProxyData

PROXY_TIMEOUT = 10.0  # seconds for the header to arrive; a proxy sends it at once

# `refused` values of the `connect` audit event; no reply is sent, as the
# other end is not speaking SMTP yet.
UNTRUSTED = "proxy-untrusted"
INVALID = "proxy-invalid"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    trusted: tuple[Network, ...]

    def trusts(self, address: str) -> bool:
        ip = _address(address)
        return ip is not None and any(ip in network for network in self.trusted)


def proxied_client(data: ProxyData, proxy_ip: str) -> str | None:
    """The client address a header stands for; None when the header is unusable.

    A v2 LOCAL header (the proxy's own health check) and a v1 UNKNOWN one
    carry no client: the connection is the proxy's, as the specification says.
    """
    if not data.valid:
        return None
    if data.command == V2_CMD.LOCAL or data.family == AF.UNSPEC:
        return proxy_ip
    if data.family not in (AF.INET, AF.INET6):
        return None  # a Unix socket path is no client address
    ip = _address(str(data.src_addr))
    return None if ip is None else str(ip)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped or ip
