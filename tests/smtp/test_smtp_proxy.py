"""PROXY protocol: the listener keys, and which client a header stands for (headers parsed by aiosmtpd's own reader)."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from pathlib import Path

import pytest
from aiosmtpd.proxy_protocol import ProxyData, get_proxy

from relay.smtp.config import ConfigError, parse_service_config
from relay.smtp.proxy import ProxyPolicy, proxied_client

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def _listener(**keys) -> dict:
    return {"listeners": [{"kind": "loopback", "port": 2525, **keys}]}


def _parse(document: dict):
    return parse_service_config(document, Path("/etc/relay/relay.toml"))


def test_proxy_keys_are_read_per_listener():
    listener = _parse(_listener(proxy_protocol=True, proxy_from=["127.0.0.1", "::1", "10.0.0.0/24"])).listeners[0]
    assert listener.proxy_protocol
    assert listener.proxy_from == tuple(ipaddress.ip_network(n) for n in ("127.0.0.1/32", "::1/128", "10.0.0.0/24"))
    assert not _parse(_listener()).listeners[0].proxy_protocol


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"proxy_protocol": True}, "[listeners[0]] proxy_from: proxy_protocol = true needs the proxies' addresses"),
        ({"proxy_protocol": True, "proxy_from": []}, "proxy_from: proxy_protocol = true needs"),
        ({"proxy_protocol": True, "proxy_from": ["haproxy.local"]}, "proxy_from: 'haproxy.local' is not an IP address or network"),
        ({"proxy_protocol": True, "proxy_from": ["10.0.0.1/24"]}, "proxy_from: '10.0.0.1/24' is not"),  # host bits set: a typo
        ({"proxy_from": ["127.0.0.1"]}, "proxy_from: is only read with proxy_protocol = true"),
        ({"proxy_protocol": "yes", "proxy_from": ["127.0.0.1"]}, "proxy_protocol: must be true or false"),
    ],
)
def test_proxy_keys_are_strict(keys, message):
    with pytest.raises(ConfigError) as error:
        _parse(_listener(**keys))
    assert message in str(error.value)


def test_implicit_tls_cannot_sit_behind_a_proxy():
    keys = {"kind": "mx", "tls": "tls", "certificate": "c.pem", "key": "k.pem", "proxy_protocol": True, "proxy_from": ["127.0.0.1"]}
    with pytest.raises(ConfigError, match="proxy_protocol: not available with tls"):
        _parse(_listener(**keys))


def _read(header: bytes) -> ProxyData:
    async def parse() -> ProxyData:
        reader = asyncio.StreamReader()
        reader.feed_data(header + b"EHLO x\r\n")
        return await get_proxy(reader)

    return asyncio.run(parse())


def _v2(command: int, family: int, addresses: bytes) -> bytes:
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(addresses)) + addresses


@pytest.mark.parametrize(
    "header, client",
    [
        (b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 25\r\n", "192.0.2.9"),
        (b"PROXY TCP6 2001:db8::9 ::1 40000 25\r\n", "2001:db8::9"),
        (b"PROXY UNKNOWN\r\n", "127.0.0.1"),  # no client named: the connection is the proxy's
        (_v2(1, 0x11, bytes([192, 0, 2, 7, 127, 0, 0, 1]) + struct.pack("!HH", 40000, 25)), "192.0.2.7"),
        (_v2(0, 0x00, b""), "127.0.0.1"),  # LOCAL: the proxy's own health check
        (_v2(1, 0x31, b"/run/a".ljust(108, b"\0") + b"/run/b".ljust(108, b"\0")), None),  # a Unix socket is no client
        (b"PROXY TCP4 999.0.0.1 127.0.0.1 1 25\r\n", None),
        (b"HELO client.test\r\n", None),
    ],
)
def test_the_client_a_header_stands_for(header, client):
    assert proxied_client(_read(header), "127.0.0.1") == client


def test_trusted_proxies_by_address_and_network():
    policy = ProxyPolicy((ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/24")))
    assert policy.trusts("127.0.0.1") and policy.trusts("10.0.0.200")
    assert policy.trusts("::ffff:10.0.0.3")  # an IPv4 peer on a dual-stack socket
    assert not policy.trusts("127.0.0.5") and not policy.trusts("10.0.1.1") and not policy.trusts("unknown")
