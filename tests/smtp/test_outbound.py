"""The outbound and acknowledgement decisions, the key ring's restraint after a failed login,
and the send_mdn policy flag as the trust directory and `relay route` give it."""

from __future__ import annotations

import datetime as dt

import pytest

from relay.cli.main import main
from relay.cli.route import _policy
from relay.core.limits import DEFAULT_LIMITS
from relay.core.reasons import Reason
from relay.core.snapshot import DomainRule, MessagePolicy, Snapshot
from relay.core.verdict import Verdict
from relay.demopki import write_demo_pki
from relay.dkim import DkimKeyTable
from relay.keys.config import TokenConfig
from relay.keys.errors import KeyErrorCode, KeyStoreError
from relay.keys.pin import PinSource
from relay.queue.mdn import plan_mdns
from relay.queue.spool import Envelope, RecipientState
from relay.smtp.crypto_config import KeysConfig
from relay.smtp.decide import Accepted, Refused, Transaction
from relay.smtp.keyring import KeyRing
from relay.smtp.outbound import Outbound, signs_on_behalf
from relay.smtp.replies import Refusal, reply
from relay.trust.loader import load_snapshot
from tests.trust.trustfactory import copy_example

APP = "dpi@hopital.test"
POLICY = MessagePolicy(unsigned_senders=frozenset({APP}), sign_on_behalf=True)
NOW = dt.datetime(2026, 6, 1, 9, 30, tzinfo=dt.timezone.utc)


def _accepted(signed: bool) -> Accepted:
    # The signer identity is not read by these decisions; an unsigned verdict serves both cases.
    return Accepted(signed, Verdict.reject(Reason.UNSIGNED, "no signature"))


@pytest.mark.parametrize(
    ("signed", "policy", "user", "sender", "expected"),
    [
        (False, POLICY, APP, APP, True),
        (True, POLICY, APP, APP, False),  # already signed by its author
        (False, POLICY, None, APP, False),  # not an authenticated submission
        (False, POLICY, "other@hopital.test", "other@hopital.test", False),  # not listed
        (False, MessagePolicy(unsigned_senders=frozenset({APP})), APP, APP, False),  # the policy does not sign
        (False, POLICY, "DPI@Hopital.TEST", "dpi@HOPITAL.test", True),  # domains compare case-insensitively
    ],
)
def test_who_is_signed_for(signed, policy, user, sender, expected):
    tx = Transaction(sender=sender, recipients=("dr@medecin.test",), user=user)
    assert signs_on_behalf(_accepted(signed), policy, tx) is expected


def _missing_module_ring(clock: list[float], retry: float = 60.0) -> KeyRing:
    token = TokenConfig("/nonexistent/libpkcs11.so", "relay-org", PinSource(env="UNUSED_PIN"))
    config = KeysConfig(token, "org", False, None, None, None, retry)
    return KeyRing(config, clock=lambda: clock[0])


def test_a_failed_load_is_not_retried_before_login_retry():
    clock = [100.0]
    ring = _missing_module_ring(clock)
    with pytest.raises(KeyStoreError) as first:
        ring.signing_key()
    assert first.value.code is KeyErrorCode.MODULE_NOT_FOUND
    clock[0] += 59
    with pytest.raises(KeyStoreError) as held:
        ring.signing_key()
    assert held.value is first.value  # answered from memory: the token was not asked again
    clock[0] += 2
    with pytest.raises(KeyStoreError) as retried:
        ring.signing_key()
    assert retried.value is not first.value and retried.value.code is KeyErrorCode.MODULE_NOT_FOUND


def test_an_unavailable_key_is_a_temporary_refusal():
    outbound = Outbound(_missing_module_ring([0.0]), DkimKeyTable({}), DEFAULT_LIMITS)
    tx = Transaction(sender=APP, recipients=("dr@medecin.test",), user=APP)
    message = f"From: <{APP}>\r\nTo: <dr@medecin.test>\r\nSubject: x\r\n\r\nbody\r\n".encode()
    refused = outbound.prepare(message, tx, _accepted(False), POLICY, NOW)
    assert isinstance(refused, Refused) and refused.code is Refusal.KEY_UNAVAILABLE
    assert reply(refused.code, refused.detail).startswith("451 4.3.0 key-unavailable: signing key unavailable (module-not-found)")


def _snapshot(send_mdn: bool) -> Snapshot:
    return Snapshot(
        "v1",
        NOW,
        domains={
            "hopital.test": DomainRule("hopital.test", True, (), policy=MessagePolicy(send_mdn=send_mdn)),
            "medecin.test": DomainRule("medecin.test", False, ()),
        },
    )


def _envelope(sender: str = "dr@medecin.test", is_dsn: bool = False) -> Envelope:
    return Envelope("q1", sender, (RecipientState("staff@hopital.test"), RecipientState("dr2@medecin.test")), 0.0, 0.0, is_dsn=is_dsn)


ASKING = (
    b"From: <dr@medecin.test>\r\nTo: <staff@hopital.test>, <dr2@medecin.test>\r\nSubject: x\r\n"
    b"Message-ID: <m1@medecin.test>\r\nDisposition-Notification-To: <dr@medecin.test>, <nobody@unknown.test>\r\n\r\nbody\r\n"
)


def test_mdns_go_for_local_recipients_to_known_requesters_only():
    planned = plan_mdns(_snapshot(True), _envelope(), ["staff@hopital.test", "dr2@medecin.test"], ASKING)
    assert [(p.final_recipient, p.to) for p in planned] == [("staff@hopital.test", ("dr@medecin.test",))]


@pytest.mark.parametrize(
    ("snapshot", "envelope", "data"),
    [
        (_snapshot(False), _envelope(), ASKING),  # the local policy sends none
        (_snapshot(True), _envelope(sender=""), ASKING),  # a bounce or notification
        (_snapshot(True), _envelope(is_dsn=True), ASKING),  # our own DSN or MDN
        (_snapshot(True), _envelope(), ASKING.replace(b"Disposition-Notification-To", b"X-Not-Asked")),
        (_snapshot(True), _envelope(), b"\x00 not a header\r\n\r\n"),  # unreadable: asks for nothing
    ],
)
def test_no_mdn_is_planned(snapshot, envelope, data):
    assert plan_mdns(snapshot, envelope, ["staff@hopital.test"], data) == ()


def test_relay_route_shows_the_mdn_policy():
    assert _policy(MessagePolicy(send_mdn=True)).endswith("; envelope checked; sends MDNs")
    assert "MDN" not in _policy(MessagePolicy())


def test_the_trust_directory_reads_send_mdn(tmp_path):
    write_demo_pki(tmp_path / "pki" / "demo")
    config = copy_example(tmp_path / "pki" / "demo", tmp_path / "copy")
    domains = config.parent / "trust" / "domains.toml"
    domains.write_text(domains.read_text().replace("envelope_check = true\n", "envelope_check = true\nsend_mdn = true\n", 1))
    snapshot = load_snapshot(config)
    assert snapshot.route("claire.martin@hopital-demo.mssante.fr").policy.send_mdn
    assert not snapshot.route("dr@clinique-peer.mssante.fr").policy.send_mdn
    assert main(["check", "--config", str(config)]) == 0


def test_relay_check_reads_the_crypto_sections(tmp_path, capsys):
    write_demo_pki(tmp_path / "pki" / "demo")
    config = copy_example(tmp_path / "pki" / "demo", tmp_path / "copy", with_service=True)
    config.write_text(config.read_text() + '\n[keys]\ntoken = "relay-org"\nsign_label = "org"\n')
    assert main(["check", "--config", str(config)]) == 1
    assert "[keys] pin_file: give exactly one PIN source" in capsys.readouterr().err
