"""[bundle.NAME] tables: anchors, intermediates, CRLs and the verification profile."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from ..core.bundle import Bundle, Purpose, RevocationMode
from .crlcache import cache_file
from .material import MaterialError, crl_signer, is_ca, parse_certificates, parse_crls
from .sources import Sources
from .tomlsource import Table

_OID = re.compile(r"[0-2](?:\.\d+)+")


@dataclass(frozen=True)
class BundleSpec:
    """What a bundle table says, with where it said it (for refresh and check)."""

    bundle: Bundle
    origin: str
    crl_urls: tuple[str, ...] = ()
    cache_dir: Path | None = None


def read_bundle(table: Table, base: Path, sources: Sources, now: dt.datetime) -> BundleSpec:
    name = str(table.keypath[-1])
    purpose = Purpose(table.string("purpose", "smime", choices=[p.value for p in Purpose]))
    anchor_files = table.strings("anchors")
    if not anchor_files:
        table.error("anchors", f"{table.name} needs at least one anchor file")
    anchors = _certificates(table, "anchors", anchor_files, base, sources)
    intermediates = _certificates(table, "intermediates", table.strings("intermediates"), base, sources)
    _check_cas(table, "anchors", anchors, now)
    _check_cas(table, "intermediates", intermediates, now)
    crls, crl_urls, cache_dir = _revocation(table, name, base, anchors + intermediates, sources, now)
    bundle = Bundle(
        name=name,
        anchors=anchors,
        intermediates=intermediates,
        crls=crls,
        purpose=purpose,
        require_professional=table.boolean("require_professional", purpose is Purpose.SMIME),
        allow_org_certs=table.boolean("allow_org_certs", False),
        allow_subject_email=table.boolean("allow_subject_email", False),
        required_policies=_policies(table),
        revocation=RevocationMode(table.string("revocation", "hard", choices=[m.value for m in RevocationMode])),
    )
    table.done()
    return BundleSpec(bundle, table.where(), crl_urls, cache_dir)


def _revocation(
    table: Table, name: str, base: Path, cas: tuple[x509.Certificate, ...], sources: Sources, now: dt.datetime
) -> tuple[tuple[x509.CertificateRevocationList, ...], tuple[str, ...], Path]:
    """CRLs from files and from the cache of the distribution URLs."""
    crls = _crls(table, "crls", [(p, base / p) for p in table.strings("crls")], cas, sources, now)
    crl_urls = _urls(table)
    cache_dir = base / (table.string("crl_cache") or f"crl-cache/{name}")
    cached = [(url, cache_file(cache_dir, url)) for url in crl_urls]
    present = [(url, path) for url, path in cached if path.exists()]
    for url, _ in [c for c in cached if c not in present]:
        table.problems.warn(table.where("crl_urls"), f"no CRL fetched yet from {url} (run `relay crl refresh`)")
    return crls + _crls(table, "crl_urls", present, cas, sources, now), crl_urls, cache_dir


def _certificates(table: Table, key: str, names: tuple[str, ...], base: Path, sources: Sources) -> tuple[x509.Certificate, ...]:
    certs: list[x509.Certificate] = []
    for name in names:
        path = base / name
        try:
            certs += parse_certificates(sources.read(path), path)
        except OSError as error:
            table.error(key, f"{path}: {error.strerror or error}")
        except MaterialError as error:
            table.error(key, str(error))
    return tuple(certs)


def _check_cas(table: Table, key: str, certs: tuple[x509.Certificate, ...], now: dt.datetime) -> None:
    for cert in certs:
        subject = cert.subject.rfc4514_string()
        if not is_ca(cert):
            table.error(key, f"{subject} is not a CA certificate (basicConstraints cA is not set)")
        if cert.not_valid_after_utc < now:
            table.problems.warn(table.where(key), f"{subject} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        elif cert.not_valid_before_utc > now:
            table.problems.warn(table.where(key), f"{subject} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")


def _crls(
    table: Table,
    key: str,
    files: list[tuple[str, Path]],
    cas: tuple[x509.Certificate, ...],
    sources: Sources,
    now: dt.datetime,
) -> tuple[x509.CertificateRevocationList, ...]:
    kept: list[x509.CertificateRevocationList] = []
    for label, path in files:
        try:
            crls = parse_crls(sources.read(path), path)
        except OSError as error:
            table.error(key, f"{path}: {error.strerror or error}")
            continue
        except MaterialError as error:
            table.error(key, str(error))
            continue
        for crl in crls:
            if crl_signer(crl, cas) is None:
                table.error(key, f"{path}: CRL of {crl.issuer.rfc4514_string()} is not signed by a CA of the bundle")
                continue
            if crl.next_update_utc is not None and crl.next_update_utc < now:
                table.problems.warn(table.where(key), f"{path} ({label}): CRL expired on {crl.next_update_utc:%Y-%m-%d %H:%M}")
            kept.append(crl)
    return tuple(kept)


def _urls(table: Table) -> tuple[str, ...]:
    urls = table.strings("crl_urls")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            table.error("crl_urls", f"{url!r} is not an http(s) URL")
    return urls


def _policies(table: Table) -> frozenset[str]:
    oids = table.strings("required_policies")
    for oid in oids:
        if not _OID.fullmatch(oid):
            table.error("required_policies", f"{oid!r} is not a dotted OID")
    return frozenset(oids)
