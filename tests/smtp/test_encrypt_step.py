"""The encryption decisions of relay.smtp.encrypt_step on a Snapshot built in memory, and
its place in Outbound.prepare: inside the DKIM signature, around the S/MIME content."""

from __future__ import annotations

import datetime as dt

import pytest

from relay import devpki
from relay.core.limits import DEFAULT_LIMITS
from relay.core.reasons import Reason
from relay.core.smime_decrypt import decrypt_message
from relay.core.smime_encrypt import ContentCipher
from relay.core.snapshot import DomainRule, EncryptMode, MessagePolicy, Snapshot
from relay.core.verdict import Verdict
from relay.dkim import DkimKey, DkimKeyTable, DkimStatus, dns_record, static_resolver, verify_dkim
from relay.keys.decrypt import software_decryption_key
from relay.smtp import encrypt_step
from relay.smtp.crypto_config import KeysConfig
from relay.smtp.decide import Accepted, Refused, Transaction
from relay.smtp.keyring import KeyRing
from relay.smtp.outbound import Outbound
from relay.smtp.replies import Refusal

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
CA = devpki.make_ca("AC ENCRYPT")


def _leaf(address: str, **kwargs) -> devpki.Issued:
    return devpki.make_leaf(CA, devpki.direct_subject(address), emails=[address], key_usage="encrypt", **kwargs)


ALICE, BOB, EVE = _leaf("alice@gcm.test"), _leaf("bob@cbc.test"), _leaf("eve@gcm.test", not_after=dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))


def _snapshot() -> Snapshot:
    def domain(name: str, mode: EncryptMode, aead: bool) -> DomainRule:
        return DomainRule(name, False, (), policy=MessagePolicy(require_signature=False, encrypt=mode, encryption_aead=aead))

    return Snapshot(
        "v", NOW,
        domains={
            "gcm.test": domain("gcm.test", EncryptMode.REQUIRED, True),
            "cbc.test": domain("cbc.test", EncryptMode.WHEN_POSSIBLE, False),
            "aead-maybe.test": domain("aead-maybe.test", EncryptMode.WHEN_POSSIBLE, True),
            "clear.test": domain("clear.test", EncryptMode.NEVER, False),
        },
        recipients={"alice@gcm.test": ALICE.cert, "bob@cbc.test": BOB.cert, "eve@gcm.test": EVE.cert},
    )


SNAPSHOT = _snapshot()


@pytest.mark.parametrize(
    "recipients, expected",
    [
        (["alice@gcm.test"], ContentCipher.AES256_GCM),
        (["bob@cbc.test"], ContentCipher.AES256_CBC),
        (["alice@gcm.test", "bob@cbc.test"], ContentCipher.AES256_CBC),  # every receiver must open GCM
        (["x@clear.test"], None),
        (["x@aead-maybe.test"], None),  # when-possible, no certificate: clear
        (["bob@cbc.test", "x@aead-maybe.test"], None),  # one envelope for all or none
    ],
)
def test_the_plan(recipients, expected):
    plan = encrypt_step.plan(recipients, SNAPSHOT, NOW)
    assert (plan.cipher if plan else None) is expected


def test_a_required_recipient_beside_one_without_certificate_refuses_the_message():
    plan = encrypt_step.plan(["alice@gcm.test", "x@clear.test"], SNAPSHOT, NOW)
    assert isinstance(plan, Refused) and plan.code is Refusal.ENCRYPTION_REQUIRED


def test_rcpt_check_and_an_expired_certificate():
    assert encrypt_step.check_recipient(SNAPSHOT, "alice@gcm.test", NOW) is None
    assert encrypt_step.check_recipient(SNAPSHOT, "x@cbc.test", NOW) is None  # when-possible never refuses
    refused = encrypt_step.check_recipient(SNAPSHOT, "eve@gcm.test", NOW)  # expired since the load
    assert isinstance(refused, Refused) and refused.code is Refusal.ENCRYPTION_REQUIRED


def test_one_envelope_for_both_recipients_opens_with_each_key():
    plan = encrypt_step.plan(["alice@gcm.test", "bob@cbc.test"], SNAPSHOT, NOW)
    message = b"From: <a@clear.test>\r\nTo: <alice@gcm.test>, <bob@cbc.test>\r\nSubject: s\r\n\r\nResultat.\r\n"
    sealed = plan.seal(message, DEFAULT_LIMITS)
    assert b"smime-type=enveloped-data" in sealed and b"Resultat." not in sealed
    for leaf in (ALICE, BOB):
        assert b"Resultat." in decrypt_message(sealed, [software_decryption_key(leaf.key, leaf.cert)]).message
    assert plan.seal(sealed, DEFAULT_LIMITS) == sealed  # an envelope is never wrapped twice


def test_an_unreadable_message_is_a_refusal_not_a_crash():
    plan = encrypt_step.plan(["alice@gcm.test"], SNAPSHOT, NOW)
    refused = plan.seal(b"no header line\r\n" * 3, DEFAULT_LIMITS)
    assert isinstance(refused, Refused) and refused.code is Reason.MALFORMED


def test_dkim_signs_what_travels_encrypted():
    key = DkimKey("clear.test", "s", devpki.new_key("rsa2048"))
    outbound = Outbound(KeyRing(KeysConfig(None, None, False, None, None, None, 60.0)), DkimKeyTable.of(key), DEFAULT_LIMITS)
    plan = encrypt_step.plan(["alice@gcm.test"], SNAPSHOT, NOW)
    message = b"From: <app@clear.test>\r\nTo: <alice@gcm.test>\r\nSubject: s\r\n\r\nResultat.\r\n"
    tx = Transaction("app@clear.test", ("alice@gcm.test",), "app@clear.test")
    prepared = outbound.prepare(
        message, tx, Accepted(False, Verdict.reject(Reason.UNSIGNED, "-")), MessagePolicy(), NOW,
        lambda data: plan.seal(data, DEFAULT_LIMITS),
    )
    assert prepared.message.startswith(b"DKIM-Signature:") and b"authEnveloped-data" in prepared.message
    results = verify_dkim(prepared.message, static_resolver({"s._domainkey.clear.test": dns_record(key)}))
    assert [r.status for r in results] == [DkimStatus.PASS]
