"""Fetch every bundle's CRLs and replace the cached copies that are better.

A fetched CRL replaces the cached one only if a CA of the bundle signed it,
it is current, and it is not older than the cached one (CRL number, then
thisUpdate). Any failure keeps the cached file as it was.
"""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .atomic import atomic_write
from .bundles import BundleSpec
from .crlcache import cache_file
from .material import MaterialError, crl_number, crl_signer, parse_crls

MAX_CRL_BYTES = 64 * 1024 * 1024
CLOCK_SKEW = dt.timedelta(minutes=5)

_DER = Encoding.DER

Fetch = Callable[[str, float], bytes]


class Status(StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    bundle: str
    url: str
    status: Status
    message: str
    next_update: dt.datetime | None = None  # of the CRL now in the cache


class RefreshError(Exception):
    pass


def fetch_http(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(MAX_CRL_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise RefreshError(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise RefreshError(f"fetch failed: {getattr(error, 'reason', error)}") from None
    if len(data) > MAX_CRL_BYTES:
        raise RefreshError(f"larger than {MAX_CRL_BYTES} bytes")
    return data


def refresh_bundle(spec: BundleSpec, now: dt.datetime, timeout: float = 10.0, fetch: Fetch = fetch_http) -> list[Outcome]:
    assert spec.cache_dir is not None or not spec.crl_urls
    return [_refresh_one(spec, url, cache_file(spec.cache_dir, url), now, timeout, fetch) for url in spec.crl_urls]  # type: ignore[arg-type]


def _refresh_one(spec: BundleSpec, url: str, path: Path, now: dt.datetime, timeout: float, fetch: Fetch) -> Outcome:
    name = spec.bundle.name
    cached = _cached(path)
    try:
        data = fetch(url, timeout)
        crl = _acceptable(data, url, spec, cached, now)
    except RefreshError as error:
        # (a CRL without entries has len() 0: test against None, not truthiness)
        if cached is None:
            return Outcome(name, url, Status.FAILED, str(error))
        return Outcome(name, url, Status.FAILED, f"{error}; kept the cached CRL", cached.next_update_utc)
    if cached is not None and crl.public_bytes(_DER) == cached.public_bytes(_DER):
        return Outcome(name, url, Status.UNCHANGED, "same CRL as cached", crl.next_update_utc)
    atomic_write(path, data)
    return Outcome(name, url, Status.UPDATED, f"CRL number {crl_number(crl)}, next update {_when(crl.next_update_utc)}", crl.next_update_utc)


def _acceptable(
    data: bytes, url: str, spec: BundleSpec, cached: x509.CertificateRevocationList | None, now: dt.datetime
) -> x509.CertificateRevocationList:
    try:
        crls = parse_crls(data, url)
    except MaterialError as error:
        raise RefreshError(str(error)) from None
    if len(crls) != 1:
        raise RefreshError(f"{len(crls)} CRLs in the response, expected one")
    crl = crls[0]
    if crl_signer(crl, spec.bundle.anchors + spec.bundle.intermediates) is None:
        raise RefreshError(f"CRL of {crl.issuer.rfc4514_string()} is not signed by a CA of bundle {spec.bundle.name!r}")
    if crl.last_update_utc > now + CLOCK_SKEW:
        raise RefreshError(f"CRL thisUpdate {_when(crl.last_update_utc)} is in the future")
    if crl.next_update_utc is not None and crl.next_update_utc <= now:
        raise RefreshError(f"CRL is stale: nextUpdate {_when(crl.next_update_utc)} has passed")
    if cached is not None and _age_key(crl) < _age_key(cached):
        raise RefreshError(f"CRL number {crl_number(crl)} is older than the cached {crl_number(cached)}")
    return crl


def _age_key(crl: x509.CertificateRevocationList) -> tuple[int, dt.datetime]:
    return (crl_number(crl) or 0, crl.last_update_utc)


def _cached(path: Path) -> x509.CertificateRevocationList | None:
    try:
        crls = parse_crls(path.read_bytes(), path)
    except (OSError, MaterialError):
        return None
    return crls[0] if len(crls) == 1 else None


def _when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}Z" if moment else "none"

