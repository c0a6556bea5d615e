import datetime as dt

import pytest

from relay.core.reasons import Reason
from relay.core.snapshot import DomainRule, MailboxEntry, MailboxKind, MessagePolicy, Snapshot
from relay.core.verdict import SignerIdentity, Verdict
from relay.smtp import decide
from relay.trust.dn import normalise_dn
from relay.smtp.decide import Accepted, Refused
from relay.smtp.replies import REPLIES, Refusal, reply
from relay.core.limits import MessageLimits

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def snapshot() -> Snapshot:
    return Snapshot(
        version="v1",
        loaded_at=NOW,
        domains={
            "hospital.test": DomainRule("hospital.test", True, ("s",)),
            "clinic.test": DomainRule("clinic.test", True, ("s",)),
            "peer.test": DomainRule("peer.test", False, ("s",), operator_dns=frozenset({normalise_dn("CN=mx.peer.test,O=Peer,C=FR")})),
        },
        mailboxes={"bob@hospital.test": MailboxEntry("bob@hospital.test", MailboxKind.PERSONAL)},
    )


@pytest.mark.parametrize(
    "address, may_relay, expected",
    [
        ("bob@hospital.test", False, None),
        ("bob@HOSPITAL.test", False, None),
        ("eve@hospital.test", True, Refusal.UNKNOWN_MAILBOX),  # the directory lists hospital.test's mailboxes
        ("anyone@clinic.test", False, None),  # no directory for clinic.test: any mailbox
        ("x@peer.test", True, None),
        ("x@peer.test", False, Refusal.RELAY_DENIED),  # no relaying for peers
        ("x@elsewhere.test", True, Refusal.RELAY_DENIED),
    ],
)
def test_recipient_decisions(address, may_relay, expected):
    refused = decide.check_recipient(snapshot(), address, may_relay)
    assert (refused.code if refused else None) == expected


def _operator(snap, sender, dn):
    return decide.check_peer_operator(snap, sender, normalise_dn(dn), dn)


def test_peer_operator_must_be_listed_for_sender_domain():
    snap = snapshot()
    assert _operator(snap, "a@peer.test", "cn=mx.peer.test, o=Peer, c=FR") is None
    refused = _operator(snap, "a@peer.test", "CN=other,O=Peer,C=FR")
    assert refused.code is Refusal.OPERATOR_NOT_LISTED and refused.detail.startswith("CN=other,O=Peer,C=FR is not")
    assert _operator(snap, "a@nowhere.test", "CN=mx.peer.test,O=Peer,C=FR").code is Refusal.SENDER_DOMAIN_UNKNOWN


def test_peer_operator_with_an_escaped_comma_in_its_dn():
    listed = DomainRule("acme.test", False, ("s",), operator_dns=frozenset({normalise_dn(r"CN=mx,O=Acme\, Inc.,C=FR")}))
    snap = Snapshot(version="v1", loaded_at=NOW, domains={"acme.test": listed})
    assert _operator(snap, "a@acme.test", r"CN=mx,O=Acme\, Inc.,C=FR") is None


@pytest.mark.parametrize(
    "data",
    [b"A: b\r\n\r\nline\n.\nmore\r\n", b"A: b\r\n\r\nline\r.\rmore\r\n", b"A: b\r\n\r\nx\n.\r\n", b"A: b\rC: d\r\n"],
)
def test_bare_line_endings_are_refused(data):
    refused = decide.check_line_endings(data)
    assert refused is not None and refused.code is Refusal.BARE_LINE_ENDING


def test_crlf_only_data_passes():
    assert decide.check_line_endings(b"A: b\r\n\r\nbody\r\n.\r\n") is None


def test_header_limits_and_loops():
    limits = MessageLimits(max_header_count=3, max_header_bytes=200)
    assert decide.check_header_limits(b"A: 1\r\nB: 2\r\n\r\nbody\r\n", limits, 50) is None
    assert decide.check_header_limits(b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", limits, 50).code is Refusal.HEADER_TOO_BIG
    assert decide.check_header_limits(b"A: " + b"x" * 300 + b"\r\n\r\n", limits, 50).code is Refusal.HEADER_TOO_BIG
    loop = b"".join(b"Received: from a by b\r\n" for _ in range(51)) + b"\r\nbody\r\n"
    assert decide.check_header_limits(loop, MessageLimits(), 50).code is Refusal.MAIL_LOOP
    # Folded continuation lines are not fields.
    assert decide.check_header_limits(b"A: 1\r\n 2\r\n 3\r\n 4\r\n\r\n", limits, 50) is None


HEADERS = b"From: Alice <alice@hospital.test>\r\nTo: bob@hospital.test, \"C\" <carol@peer.test>\r\nCc: dan@peer.test\r\nMessage-ID: <m1@x>\r\n\r\nbody\r\n"


def test_envelope_check():
    h = decide.read_headers(HEADERS)
    assert h.message_id == "<m1@x>"
    policy = MessagePolicy()
    assert decide.check_envelope(h, "alice@hospital.test", ["bob@hospital.test", "dan@peer.test"], policy) is None
    assert decide.check_envelope(h, "mallory@hospital.test", ["bob@hospital.test"], policy).code is Refusal.ENVELOPE_MISMATCH
    refused = decide.check_envelope(h, "alice@hospital.test", ["eve@peer.test"], policy)
    assert refused.code is Refusal.ENVELOPE_MISMATCH and "eve@peer.test" in refused.detail
    assert decide.check_envelope(h, "mallory@x.test", ["eve@peer.test"], MessagePolicy(envelope_check=False)) is None


def test_author_must_be_the_authenticated_user():
    h = decide.read_headers(HEADERS)
    assert decide.check_author(h, "alice@hospital.test") is None
    assert decide.check_author(h, "bob@hospital.test").code is Refusal.SENDER_NOT_OWNED
    assert decide.check_submitter("alice@hospital.test", "alice@HOSPITAL.test") is None
    assert decide.check_submitter("alice@hospital.test", "bob@hospital.test").code is Refusal.SENDER_NOT_OWNED


def test_policy():
    unsigned = Verdict.reject(Reason.UNSIGNED, "not signed")
    revoked = Verdict.reject(Reason.CERTIFICATE_REVOKED, "serial 3")
    good = Verdict.accept(SignerIdentity("CN=x", "ab" * 32, "alice@hospital.test", "899700000001"), "s")
    strict = MessagePolicy(require_signature=True, unsigned_senders=frozenset({"robot@hospital.test"}))
    assert decide.apply_policy(good, strict, "alice@hospital.test", None) == Accepted(True, good)
    assert decide.apply_policy(unsigned, strict, "alice@hospital.test", "alice@hospital.test") == Refused(Reason.UNSIGNED, "not signed")
    assert decide.apply_policy(unsigned, strict, "robot@hospital.test", "robot@hospital.test") == Accepted(False, unsigned)
    # The exemption is for authenticated internal senders only.
    assert isinstance(decide.apply_policy(unsigned, strict, "robot@hospital.test", None), Refused)
    assert decide.apply_policy(unsigned, MessagePolicy(require_signature=False), "x@y", None) == Accepted(False, unsigned)
    assert decide.apply_policy(revoked, MessagePolicy(require_signature=False), "x@y", None).code is Reason.CERTIFICATE_REVOKED


def test_every_reason_has_one_reply_code():
    for reason in Reason:
        if reason is Reason.OK:
            continue
        rc = REPLIES[reason]
        assert rc.basic // 100 in (4, 5) and rc.enhanced[0] == str(rc.basic // 100)
    for refusal in Refusal:
        assert refusal in REPLIES
    assert reply(Reason.CERTIFICATE_REVOKED, "serial 12\r\n250 forged") == "550 5.7.1 certificate-revoked: serial 12 250 forged"
    assert reply(Reason.REVOCATION_UNKNOWN, "no CRL").startswith("451 4.7.5 revocation-unknown")


def test_trace_fields():
    received = decide.received_field("client\r\nX-Evil: 1", "192.0.2.1", "relay.test", "ESMTPSA", "abc", NOW)
    assert received.startswith(b"Received: from client??X-Evil:?1 ([192.0.2.1])")
    assert received.count(b"\r\n") == 3
    good = Verdict.accept(SignerIdentity("CN=x", "ab", "alice@hospital.test"), "s")
    assert b"smime=pass smime.signer=alice@hospital.test" in decide.authentication_results("relay.test", Accepted(True, good))
    unsigned = Accepted(False, Verdict.reject(Reason.UNSIGNED, ""))
    assert decide.authentication_results("relay.test", unsigned) == b"Authentication-Results: relay.test;\r\n\tsmime=none\r\n"
    assert decide.authentication_results("relay.test", unsigned, "robot@hospital.test") == (
        b"Authentication-Results: relay.test;\r\n\tsmime=none;\r\n\tauth=pass smtp.auth=robot@hospital.test\r\n"
    )


def test_judge_runs_the_checks_in_order():
    snap = Snapshot(version="v", loaded_at=NOW, domains={"hospital.test": DomainRule("hospital.test", True, (), policy=MessagePolicy(require_signature=False))})
    good = b"From: <alice@hospital.test>\r\nTo: <bob@hospital.test>\r\nMessage-ID: <m 1@x>\r\n\r\nbody\r\n"
    tx = decide.Transaction("alice@hospital.test", ("bob@hospital.test",), "alice@hospital.test")

    def run(data: bytes, t: decide.Transaction = tx) -> decide.Judgement:
        return decide.judge(data, t, snap, NOW, MessageLimits(), 50)

    accepted = run(good)
    assert accepted.outcome == Accepted(False, accepted.verdict) and accepted.verdict.code is Reason.UNSIGNED
    assert accepted.message_id == "<m?1@x>"
    # Smuggling wins over every later check, even with a forged envelope.
    smuggled = run(good.replace(b"body\r\n", b"body\n.\n"), decide.Transaction("mallory@x.test", ("eve@x.test",), None))
    assert smuggled.outcome.code is Refusal.BARE_LINE_ENDING and smuggled.verdict is None
    assert run(good, decide.Transaction("bob@hospital.test", ("bob@hospital.test",), "bob@hospital.test")).outcome.code is Refusal.SENDER_NOT_OWNED
    assert run(good, decide.Transaction("alice@hospital.test", ("carol@hospital.test",), None)).outcome.code is Refusal.ENVELOPE_MISMATCH
    strict = Snapshot(version="v", loaded_at=NOW, domains={"hospital.test": DomainRule("hospital.test", True, ())})
    refused = decide.judge(good, tx, strict, NOW, MessageLimits(), 50)
    assert refused.outcome == Refused(Reason.UNSIGNED, refused.verdict.detail)


def test_results_claiming_our_authserv_id_are_removed_and_the_rest_kept_byte_for_byte():
    message = (
        b"Received: from a ([127.0.0.1])\r\n\tby peer; Mon, 1 Jun 2026 09:00:00 +0000\r\n"
        b"Authentication-Results: relay.test;\r\n\tsmime=pass smime.signer=boss@hopital.fr\r\n"
        b"authentication-results:  RELAY.TEST ; dkim=pass\r\n"
        b"Authentication-Results: mx.peer.example; dkim=pass header.d=peer.example\r\n"
        b"Authentication-Results: relay.test.evil.example; smime=pass\r\n"
        b"From: <a@b.fr>\r\n\r\n"
        b"Authentication-Results: relay.test; smime=pass\r\n"  # in the body: not a header
    )
    cleaned = decide.strip_forged_results(message, "relay.test")
    assert cleaned == (
        b"Received: from a ([127.0.0.1])\r\n\tby peer; Mon, 1 Jun 2026 09:00:00 +0000\r\n"
        b"Authentication-Results: mx.peer.example; dkim=pass header.d=peer.example\r\n"
        b"Authentication-Results: relay.test.evil.example; smime=pass\r\n"
        b"From: <a@b.fr>\r\n\r\n"
        b"Authentication-Results: relay.test; smime=pass\r\n"
    )
    assert decide.strip_forged_results(b"From: <a@b.fr>\r\n\r\nhi\r\n", "relay.test") == b"From: <a@b.fr>\r\n\r\nhi\r\n"
