"""relay crl refresh against a CRL server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509

from relay.cli.main import main
from relay.devpki import Issued, crl_pem, load_issued, make_ca, make_crl
from relay.trust.crlcache import cache_file
from relay.trust.loader import load_directory

NOW = dt.datetime.now(dt.timezone.utc)


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.files.get(self.path)  # type: ignore[attr-defined]
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def crl_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.files = {}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def crl(ca: Issued, number: int, *, revoked=(), hours: float = 48, signer: Issued | None = None) -> bytes:
    return crl_pem(make_crl(
        ca, revoked, crl_number=number, this_update=NOW - dt.timedelta(hours=1),
        next_update=NOW + dt.timedelta(hours=hours), signer=signer,
    ))


@pytest.fixture
def setup(example: Path, crl_server: _Server):
    """The example with the signer bundle fetching its CA's CRL from the local server."""
    url = f"http://127.0.0.1:{crl_server.server_address[1]}/igc-personnes.crl"
    bundles = example.parent / "trust" / "bundles.toml"
    text = bundles.read_text().replace(
        '    "../../certs/demo/igc-personnes.crl",\n', ""
    ).replace('revocation = "hard"', f'revocation = "hard"\ncrl_urls = ["{url}"]', 1)
    bundles.write_text(text)
    ca = load_issued(example.parent.parent / "certs" / "demo", "igc-personnes")
    cached = cache_file(example.parent / "trust" / "crl-cache" / "igc-sante-signers", url)
    return example, crl_server, ca, cached


def refresh(config: Path, capsys) -> tuple[int, str, str]:
    status = main(["crl", "refresh", "--config", str(config), "--timeout", "5"])
    out, err = capsys.readouterr()
    return status, out, err


def signer_crl_numbers(config: Path) -> list[int]:
    bundle = load_directory(config).snapshot.bundles["igc-sante-signers"]
    return [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in bundle.crls if "Personnes" in c.issuer.rfc4514_string()]


def test_fetch_then_newer_replaces_and_the_loader_uses_the_cache(setup, capsys) -> None:
    config, server, ca, cached = setup
    assert any("no CRL fetched yet" in w for w in load_directory(config).warnings)
    server.files["/igc-personnes.crl"] = crl(ca, 5)
    status, out, _ = refresh(config, capsys)
    assert status == 0 and "updated: CRL number 5" in out
    assert signer_crl_numbers(config) == [5]
    server.files["/igc-personnes.crl"] = crl(ca, 6, revoked=[1234])
    assert refresh(config, capsys)[0] == 0
    assert signer_crl_numbers(config) == [6]
    status, out, _ = refresh(config, capsys)
    assert status == 0 and "unchanged" in out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ca: crl(ca, 4), "older than the cached 5"),
        (lambda ca: crl(ca, 9, signer=make_ca("Demo IGC-Sante Personnes")), "is not signed by a CA of bundle 'igc-sante-signers'"),
        (lambda ca: crl(ca, 9, hours=-0.5), "is stale"),
        (lambda ca: b"not a CRL at all", "not a PEM or DER CRL"),
        (lambda ca: None, "HTTP 404"),
    ],
)
def test_a_bad_crl_keeps_the_cached_one(setup, capsys, make, message: str) -> None:
    config, server, ca, cached = setup
    server.files["/igc-personnes.crl"] = crl(ca, 5)
    refresh(config, capsys)
    before = cached.read_bytes()
    body = make(ca)
    if body is None:
        del server.files["/igc-personnes.crl"]
    else:
        server.files["/igc-personnes.crl"] = body
    status, out, _ = refresh(config, capsys)
    assert status == 1
    assert "failed" in out and message in out and "kept the cached CRL" in out
    assert cached.read_bytes() == before
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary left behind


def test_unreachable_server_fails_cleanly(setup, capsys) -> None:
    config, server, ca, cached = setup
    server.shutdown()
    server.server_close()
    status, out, _ = refresh(config, capsys)
    assert status == 1 and "fetch failed" in out
    assert not cached.exists()


def test_warns_when_the_cached_crl_nears_next_update(setup, capsys) -> None:
    config, server, ca, cached = setup
    server.files["/igc-personnes.crl"] = crl(ca, 5, hours=2)
    status, _, err = refresh(config, capsys)
    assert status == 0
    assert "reaches its nextUpdate" in err and "with no fresher replacement" in err
