"""relay check on the example configuration and on broken copies of it."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay.cli.main import main
from relay.devpki import crl_pem, load_issued, make_ca, make_crl
from relay.trust.config import register_section
from relay.trust.loader import ConfigError, load_directory
from relay.trust.tomlsource import Table
from trustfactory import PROJECT, copy_example


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["check", "--config", str(config)])
    out, err = capsys.readouterr()
    return status, out, err


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_the_example_passes_as_a_real_process(example: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "relay", "check", "--config", str(example)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout
    assert re.search(r"bundles:\s+2 \(2 anchors, 3 intermediates, 5 CRLs\)", run.stdout)
    assert re.search(r"domains:\s+4 \(2 declared, 2 from the whitelist of 3 domains\)", run.stdout)
    assert re.search(r"mailboxes: 4", run.stdout)
    assert "load" in run.stdout and run.stderr == ""


def test_the_example_without_its_certificates_names_each_missing_file(tmp_path: Path, capsys) -> None:
    shutil.copytree(PROJECT / "config", tmp_path / "config")
    status, _, err = check(tmp_path / "config" / "relay.toml", capsys)
    assert status == 1
    bundles = tmp_path / "config" / "trust" / "bundles.toml"
    assert f"{bundles}:{line_of(bundles, 'anchors = ')}:" in err
    assert "igc-root.pem: No such file or directory" in err


def test_unknown_key_is_reported_with_its_line(example: Path, capsys) -> None:
    domains = example.parent / "trust" / "domains.toml"
    edit(domains, "sign_on_behalf = true", "sign_on_behalf = true\nsign_on_behlaf = false")
    status, _, err = check(example, capsys)
    assert status == 1
    assert f"{domains}:{line_of(domains, 'sign_on_behlaf')}: unknown key 'sign_on_behlaf'" in err


def test_unknown_key_in_relay_toml_and_unknown_section(example: Path, capsys) -> None:
    example.write_text(example.read_text() + "trust_directory = 'x'\n[telemetry]\nurl = 'x'\n")
    status, _, err = check(example, capsys)
    assert status == 1
    assert f"{example}:{line_of(example, 'trust_directory')}: unknown key 'trust_directory'" in err
    assert f"{example}:{line_of(example, '[telemetry]')}: unknown key 'telemetry'" in err


def test_service_sections_go_to_their_registered_validator(example: Path) -> None:
    seen: list[str] = []

    def validate_queue(table: Table) -> None:
        seen.append(table.string("dir", required=True) or "")
        table.done()

    example.write_text(example.read_text() + "[queue]\ndir = 'spool'\ncompress = true\n")
    register_section("queue", validate_queue)
    try:
        with pytest.raises(ConfigError) as error:
            load_directory(example)
    finally:
        register_section("queue", lambda table: table.accept_all())
    assert seen == ["spool"]
    assert error.value.problems == (f"{example}:{line_of(example, 'compress')}: unknown key 'compress' in queue",)


def test_toml_syntax_error_has_file_and_line(example: Path, capsys) -> None:
    bundles = example.parent / "trust" / "bundles.toml"
    edit(bundles, 'revocation = "hard"', 'revocation = "hard" "soft"')
    status, _, err = check(example, capsys)
    assert status == 1
    assert f"{bundles}:{line_of(bundles, 'revocation = ')}: TOML syntax" in err


def test_wrong_values_are_located(example: Path, capsys) -> None:
    bundles = example.parent / "trust" / "bundles.toml"
    domains = example.parent / "trust" / "domains.toml"
    edit(bundles, 'revocation = "hard"', 'revocation = "sometimes"')
    edit(domains, 'url = "smtp://127.0.0.1:2527"', 'url = "http://peer.example:25"')
    edit(domains, 'next_hop = { url = "smtp://127.0.0.1:2526", tls = "none" }', 'next_hop = { url = "smtp://mx.example.org:25", tls = "none" }')
    status, _, err = check(example, capsys)
    assert status == 1
    assert f"{bundles}:{line_of(bundles, 'sometimes')}: bundle.igc-sante-signers.revocation = 'sometimes'" in err
    assert f"{domains}:{line_of(domains, 'http://peer')}: 'http://peer.example:25' is not smtp://host:port" in err
    assert "only allowed towards loopback hosts, not mx.example.org" in err


def test_duplicate_domain_names_both_locations(example: Path, capsys) -> None:
    extra = example.parent / "trust" / "more.toml"
    extra.write_text('# more rules\n\n[domain."Clinique-Peer.mssante.fr"]\nsigner_bundles = ["igc-sante-signers"]\n')
    domains = example.parent / "trust" / "domains.toml"
    status, _, err = check(example, capsys)
    assert status == 1
    header = '[domain."clinique-peer.mssante.fr"]'
    first = f"{domains}:{line_of(domains, header)}"
    assert f"{extra}:3: domain 'clinique-peer.mssante.fr' is already declared at {first}" in err


def test_unknown_or_misused_bundles_are_refused(example: Path, capsys) -> None:
    domains = example.parent / "trust" / "domains.toml"
    edit(domains, 'verify_bundle = "igc-sante-operators"', 'verify_bundle = "igc-sante-signers"')
    edit(domains, 'signer_bundles = ["igc-sante-signers"]\noperator_dns', 'signer_bundles = ["nobody"]\noperator_dns')
    status, _, err = check(example, capsys)
    assert status == 1
    assert "unknown bundle 'nobody'" in err
    assert "bundle 'igc-sante-signers' has purpose smime, tls is needed here" in err


def test_a_leaf_as_anchor_is_refused(example: Path, capsys) -> None:
    bundles = example.parent / "trust" / "bundles.toml"
    edit(bundles, 'anchors = ["../../certs/demo/igc-root.pem"]', 'anchors = ["../../certs/demo/dr-martin.pem"]')
    status, _, err = check(example, capsys)
    assert status == 1
    assert f"{bundles}:{line_of(bundles, 'dr-martin')}: " in err
    assert "is not a CA certificate" in err


def test_crl_signed_by_a_foreign_key_is_refused_and_expired_ones_warned(example: Path, demo_pki: Path, capsys) -> None:
    certs = example.parent.parent / "certs" / "demo"
    root = load_issued(certs, "igc-root")
    impostor = make_ca("Demo IGC-Sante Racine")
    (certs / "igc-root.crl").write_bytes(crl_pem(make_crl(root, signer=impostor)))
    stale = make_crl(root, this_update=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc), next_update=dt.datetime(2025, 2, 1, tzinfo=dt.timezone.utc))
    (certs / "igc-root-old.crl").write_bytes(crl_pem(stale))
    bundles = example.parent / "trust" / "bundles.toml"
    edit(bundles, '"../../certs/demo/igc-structures.crl"]', '"../../certs/demo/igc-structures.crl", "../../certs/demo/igc-root-old.crl"]')
    status, _, err = check(example, capsys)
    assert status == 1
    assert "igc-root.crl: CRL of" in err and "is not signed by a CA of the bundle" in err
    assert re.search(r"warning: .*igc-root-old.crl \(.*\): CRL expired on 2025-02-01", err)


def test_a_missing_whitelist_is_named_at_the_line_that_references_it(example: Path, capsys) -> None:
    whitelist = example.parent / "trust" / "whitelist.toml"
    edit(whitelist, 'file = "whitelist/listeblanchemssante-sample.xml"', 'file = "whitelist/absent.xml"')
    status, _, err = check(example, capsys)
    assert status == 1
    assert f"{whitelist}:{line_of(whitelist, 'absent.xml')}: " in err and "absent.xml: No such file" in err


def test_a_whitelist_not_matching_its_checksum_is_refused(example: Path, capsys) -> None:
    sample = example.parent / "trust" / "whitelist" / "listeblanchemssante-sample.xml"
    edit(sample, "laboratoire-exemple", "laboratoire-pirate")
    status, _, err = check(example, capsys)
    assert status == 1
    assert "SHA-256 mismatch" in err


def test_every_problem_is_listed_at_once(example: Path) -> None:
    domains = example.parent / "trust" / "domains.toml"
    bundles = example.parent / "trust" / "bundles.toml"
    edit(domains, "local = true", "local = true\ncolour = 'blue'")
    edit(bundles, 'purpose = "tls"', 'purpose = "tls"\nshape = "round"')
    with pytest.raises(ConfigError) as error:
        load_directory(example)
    assert len(error.value.problems) == 2


def test_an_expired_anchor_is_a_warning_not_an_error(example: Path, capsys) -> None:
    old = make_ca("Old Root", not_before=dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc), not_after=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    (example.parent / "trust" / "old-root.pem").write_bytes(old.cert_pem)
    bundles = example.parent / "trust" / "bundles.toml"
    edit(bundles, 'anchors = ["../../certs/demo/igc-root.pem"]', 'anchors = ["../../certs/demo/igc-root.pem", "old-root.pem"]')
    status, out, err = check(example, capsys)
    assert status == 0 and "OK" in out
    assert f"warning: {bundles}:{line_of(bundles, 'old-root.pem')}: CN=Old Root,OU=IGC-SANTE TEST,O=ASIP-SANTE,C=FR expired on 2020-01-01" in err
    assert "3 anchors" in out


def test_service_sections_are_checked_by_the_service_reader(example: Path, capsys) -> None:
    example.write_text(example.read_text() + '\n[service]\nhostname = "relay.hopital-demo.mssante.fr"\n\n[[listeners]]\nkind = "loopback"\nport = 2525\n')
    status, out, _ = check(example, capsys)
    assert status == 0 and "OK" in out
    example.write_text(example.read_text() + '\n[[listeners]]\nkind = "mx"\nport = 25\naddress = "0.0.0.0"\n')
    status, _, err = check(example, capsys)
    assert status == 1
    second = [n for n, line in enumerate(example.read_text().splitlines(), start=1) if line == "[[listeners]]"][1]
    assert f"error: {example}:{second}: [listeners[1]] certificate: a TLS listener needs certificate and key" in err  # its table's line


def test_the_whole_example_with_its_service_sections_passes(demo_pki: Path, tmp_path: Path, capsys) -> None:
    example = copy_example(demo_pki, tmp_path, with_service=True)
    assert "[[listeners]]" in example.read_text()
    status, out, err = check(example, capsys)
    assert (status, err) == (0, "")
    assert "OK" in out
