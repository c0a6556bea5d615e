"""relay route explains the rule, next hop, policy and trusted signers; whitelist merging."""

from __future__ import annotations

from pathlib import Path

from relay.cli.main import main
from relay.trust.dn import normalise_dn
from relay.trust.loader import load_snapshot


def route(config: Path, capsys, *args: str) -> tuple[int, str]:
    status = main(["route", "--config", str(config), *args])
    return status, capsys.readouterr().out


def test_local_domain_with_sender(example: Path, capsys) -> None:
    status, out = route(example, capsys, "claire.martin@HOPITAL-DEMO.mssante.fr", "--from", "paul.durand@clinique-peer.mssante.fr")
    domains = example.parent / "trust" / "domains.toml"
    assert status == 0
    assert f"rule:        domain hopital-demo.mssante.fr (local) from {domains}:4" in out
    assert "next hop:    smtp://127.0.0.1:2526 (none)" in out
    assert "unsigned accepted from automate-labo@hopital-demo.mssante.fr; signs on behalf" in out
    assert "mailbox:     PER national id 810000000001 profession 10" in out
    assert f"signers:     igc-sante-signers (smime) from {domains}:17" in out
    assert "national id: 810000000002" in out


def test_address_override(example: Path, capsys) -> None:
    _, out = route(example, capsys, "secretariat@hopital-demo.mssante.fr")
    assert "override:    address rule from" in out and "domains.toml:28" in out
    assert "next hop:    smtp://127.0.0.1:2528 (none)" in out


def test_whitelisted_domain_uses_the_defaults_and_lists_operators(example: Path, capsys) -> None:
    status, out = route(example, capsys, "dr@cabinet-exemple.mssante.fr")
    assert status == 0
    assert "(remote) from whitelist" in out and "listeblanchemssante-sample.xml:12" in out
    assert "smtp://127.0.0.1:2527 (starttls), verified by bundle igc-sante-operators" in out
    assert "CN=mss1.operateur-exemple.fr" in out and "CN=mss2.operateur-exemple.fr" in out


def test_unknown_domain(example: Path, capsys) -> None:
    status, out = route(example, capsys, "someone@gmail.com", "--from", "x@gmail.com")
    assert status == 1
    assert "rule:        none" in out and "signers:     none" in out


def test_explicit_rules_win_over_the_whitelist(example: Path) -> None:
    snapshot = load_snapshot(example)
    peer = snapshot.domains["clinique-peer.mssante.fr"]
    assert peer.origin.endswith("domains.toml:17")
    assert peer.operator_dns == {normalise_dn("CN=mx.clinique-peer.mssante.fr,OU=1750000002,O=CLINIQUE PEER,ST=Paris (75),C=FR")}
    assert snapshot.domains["laboratoire-exemple.mssante.fr"].origin.startswith("whitelist")


def test_an_explicit_rule_without_operators_keeps_the_whitelisted_ones(example: Path) -> None:
    domains = example.parent / "trust" / "domains.toml"
    domains.write_text(
        domains.read_text()
        + '\n[domain."cabinet-exemple.mssante.fr"]\nsigner_bundles = ["igc-sante-signers"]\n'
        + '[domain."cabinet-exemple.mssante.fr".next_hop]\nurl = "smtp://127.0.0.1:2600"\ntls = "tls"\nverify_bundle = "igc-sante-operators"\n'
    )
    rule = load_snapshot(example).domains["cabinet-exemple.mssante.fr"]
    assert rule.next_hop.port == 2600 and rule.origin.startswith(str(domains))
    assert len(rule.operator_dns) == 2


def test_an_empty_signer_list_on_an_address_trusts_no_bundle(example: Path, capsys) -> None:
    domains = example.parent / "trust" / "domains.toml"
    domains.write_text(domains.read_text() + '\n[address."claire.martin@hopital-demo.mssante.fr"]\nsigner_bundles = []\n')
    snapshot = load_snapshot(example)
    assert snapshot.addresses["claire.martin@hopital-demo.mssante.fr"].signer_bundles == ()
    assert snapshot.route("claire.martin@hopital-demo.mssante.fr").signer_bundles == ()
    assert snapshot.addresses["secretariat@hopital-demo.mssante.fr"].signer_bundles is None  # unset: the domain's
    assert snapshot.route("secretariat@hopital-demo.mssante.fr").signer_bundles == ("igc-sante-signers",)
    _, out = route(example, capsys, "x@hopital-demo.mssante.fr", "--from", "claire.martin@hopital-demo.mssante.fr")
    assert "signers:     none: signed mail from this sender is refused (untrusted-issuer)" in out
