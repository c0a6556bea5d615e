import datetime as dt

import pytest

from relay.core.bundle import Bundle
from relay.core.snapshot import (
    AddressRule,
    DomainRule,
    MailboxEntry,
    MailboxKind,
    MessagePolicy,
    NextHop,
    Snapshot,
    normalise_address,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def snapshot():
    hop = NextHop("127.0.0.1", 2525)
    return Snapshot(
        version="v1",
        loaded_at=NOW,
        bundles={"igc": Bundle("igc", anchors=()), "direct": Bundle("direct", anchors=())},
        domains={
            "hopital.fr": DomainRule("hopital.fr", local=True, signer_bundles=("igc",), next_hop=hop),
            "peer.fr": DomainRule("peer.fr", local=False, signer_bundles=("igc",)),
        },
        addresses={
            "lab@hopital.fr": AddressRule(
                "lab@hopital.fr", signer_bundles=("direct",), policy=MessagePolicy(require_signature=False)
            )
        },
        mailboxes={"dr.a@hopital.fr": MailboxEntry("dr.a@hopital.fr", MailboxKind.PERSONAL, "899700367917")},
    )


def test_route_uses_domain_rule_case_insensitively(snapshot):
    route = snapshot.route("Dr.A@HOPITAL.FR")
    assert route.known and route.local
    assert route.next_hop == NextHop("127.0.0.1", 2525)
    assert route.signer_bundles == ("igc",)
    assert route.policy.require_signature


def test_address_override_wins(snapshot):
    route = snapshot.route("lab@hopital.fr")
    assert route.override is not None
    assert route.signer_bundles == ("direct",)
    assert not route.policy.require_signature
    assert route.next_hop == NextHop("127.0.0.1", 2525)  # not overridden: the domain's


def test_unknown_domain(snapshot):
    route = snapshot.route("x@elsewhere.org")
    assert not route.known and not route.local and route.next_hop is None
    assert snapshot.signer_bundles("x@elsewhere.org") == ()


def test_trust_view(snapshot):
    assert [b.name for b in snapshot.signer_bundles("dr.a@hopital.fr")] == ["igc"]
    assert snapshot.national_id_of("dr.a@Hopital.fr") == "899700367917"
    assert snapshot.national_id_of("nobody@hopital.fr") is None


def test_snapshot_mappings_are_read_only(snapshot):
    with pytest.raises(TypeError):
        snapshot.domains["x.fr"] = None  # type: ignore[index]


def test_normalise_address():
    assert normalise_address(" Jean.Dupont@Hopital.FR ") == "Jean.Dupont@hopital.fr"


def test_an_empty_address_list_trusts_no_bundle(snapshot):
    closed = AddressRule("closed@hopital.fr", signer_bundles=())
    snapshot = Snapshot(
        version="v2", loaded_at=NOW, bundles=snapshot.bundles, domains=snapshot.domains,
        addresses={**snapshot.addresses, closed.address: closed},
    )
    assert snapshot.route("closed@hopital.fr").signer_bundles == ()
    assert snapshot.signer_bundles("closed@hopital.fr") == ()
    assert snapshot.route("other@hopital.fr").signer_bundles == ("igc",)  # the domain's, untouched
