"""RFC 5322 §3.4 mailboxes and address lists, strictly."""

from __future__ import annotations

import pytest

from relay.core.errors import Rejection
from relay.core.mime import Mailbox, parse_address_list, parse_mailbox
from relay.core.reasons import Reason


@pytest.mark.parametrize(
    "value, expected",
    [
        ("jean.dupont@hopital.mssante.fr", Mailbox("jean.dupont", "hopital.mssante.fr")),
        ("<jean.dupont@hopital.mssante.fr>", Mailbox("jean.dupont", "hopital.mssante.fr")),
        ("Jean Dupont <jean.dupont@hopital.mssante.fr>", Mailbox("jean.dupont", "hopital.mssante.fr", "Jean Dupont")),
        ('"Dupont, Jean" <jd@x.fr>', Mailbox("jd", "x.fr", "Dupont, Jean")),
        ('"admin@hospital.fr" <attacker@evil.fr>', Mailbox("attacker", "evil.fr", "admin@hospital.fr")),
        ("Dr. Jean Dupont <jd@x.fr>", Mailbox("jd", "x.fr", "Dr. Jean Dupont")),
        ("jd@x.fr (Jean Dupont)", Mailbox("jd", "x.fr")),
        ("(c) jd (nested (comment)) @ (c) x.fr", Mailbox("jd", "x.fr")),
        ("Jean <jd(comment)@x.fr>", Mailbox("jd", "x.fr", "Jean")),
        ('"jd"@x.fr', Mailbox("jd", "x.fr")),
        ('"jean dupont"@x.fr', Mailbox('"jean dupont"', "x.fr")),
        ('"a\\"b"@x.fr', Mailbox('"a\\"b"', "x.fr")),
        ("jd@[192.0.2.1]", Mailbox("jd", "[192.0.2.1]")),
        ("user+tag!#$%&'*/=?^_`{|}~-@x.fr", Mailbox("user+tag!#$%&'*/=?^_`{|}~-", "x.fr")),
        ("=?utf-8?q?H=C3=A9l=C3=A8ne?= <h@x.fr>", Mailbox("h", "x.fr", "Hélène")),
        ("=?UTF-8?B?SMOpbMOobmU=?= =?utf-8?q?_Martin?= <h@x.fr>", Mailbox("h", "x.fr", "Hélène Martin")),
        ("=?iso-8859-1?q?Ren=E9?= Durand <r@x.fr>", Mailbox("r", "x.fr", "René Durand")),
        ('"=?utf-8?q?not_decoded?=" <q@x.fr>', Mailbox("q", "x.fr", "=?utf-8?q?not_decoded?=")),
        ("Ève Lefèvre <e@x.fr>", Mailbox("e", "x.fr", "Ève Lefèvre")),
        ("\tjd@x.fr  ", Mailbox("jd", "x.fr")),
    ],
)
def test_valid_mailboxes(value: str, expected: Mailbox) -> None:
    assert parse_mailbox(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "(only a comment)",
        "jd",
        "@x.fr",
        "jd@",
        "jd@@x.fr",
        "jd@x.fr garbage",
        "jd@x.fr <other@y.fr>",
        "admin@hospital.fr <attacker@evil.fr>",
        "Jean <jd@x.fr> trailing",
        "Jean <jd@x.fr",
        "Jean jd@x.fr>",
        "<<jd@x.fr>>",
        "<>",
        "a@b.fr, c@d.fr",
        "a@b.fr,",
        "team: a@b.fr;",
        "undisclosed-recipients:;",
        ".jd@x.fr",
        "jd.@x.fr",
        "j..d@x.fr",
        "jd@x..fr",
        "jd@.x.fr",
        "j d@x.fr",
        "jd@x fr",
        '"unterminated@x.fr',
        "(unterminated jd@x.fr",
        "jd@[1.2.3.4",
        "jd@[1.2[3].4]",
        "jé@x.fr",
        "jd@exemple.français",
        '"jé"@x.fr',
        "Jean\\ Dupont <jd@x.fr>",
        "jd@x.fr\x00",
        "Jean [x] <jd@x.fr>",
        "=?bogus-charset?q?x?= <jd@x.fr>",
        "=?utf-8?b?!!!?= <jd@x.fr>",
        "=?utf-8?q?=FF?= <jd@x.fr>",
    ],
)
def test_invalid_mailboxes_are_malformed(value: str) -> None:
    with pytest.raises(Rejection) as caught:
        parse_mailbox(value)
    assert caught.value.reason is Reason.MALFORMED


def test_detail_names_the_problem_without_echoing_the_value() -> None:
    with pytest.raises(Rejection) as group:
        parse_mailbox("secret group: a@b.fr;")
    assert "group" in group.value.detail
    with pytest.raises(Rejection) as several:
        parse_mailbox("a@b.fr, c@d.fr")
    assert "several" in several.value.detail
    assert "b.fr" not in several.value.detail


def test_address_compares_domain_case_insensitively_and_local_part_exactly() -> None:
    assert parse_mailbox("jd@X.FR").address == "jd@x.fr"
    assert parse_mailbox("Jean <jd@x.fr>").same_address(parse_mailbox("jd@X.fr"))
    assert not parse_mailbox("JD@x.fr").same_address(parse_mailbox("jd@x.fr"))
    assert parse_mailbox('"jd"@x.fr').same_address(parse_mailbox("jd@x.fr"))


@pytest.mark.parametrize(
    "value, addresses",
    [
        ("a@b.fr", ["a@b.fr"]),
        ("a@b.fr, Jean <c@d.fr>,\"x, y\" <e@f.fr>", ["a@b.fr", "c@d.fr", "e@f.fr"]),
        ("undisclosed-recipients:;", []),
        ("Équipe: a@b.fr, c@d.fr; , e@f.fr", ["a@b.fr", "c@d.fr", "e@f.fr"]),
        ("a@b.fr (x, y), c@d.fr", ["a@b.fr", "c@d.fr"]),
    ],
)
def test_address_lists(value: str, addresses: list[str]) -> None:
    assert [m.address for m in parse_address_list(value)] == addresses


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a@b.fr,",
        ",a@b.fr",
        "a@b.fr,,c@d.fr",
        "g: a@b.fr",
        "g: a@b.fr; junk",
        ": a@b.fr;",
        "g: h: a@b.fr;;",
        "a@b.fr;",
        "g: a@b.fr,, c@d.fr;",
        "a@b.fr c@d.fr",
    ],
)
def test_invalid_address_lists_are_malformed(value: str) -> None:
    with pytest.raises(Rejection) as caught:
        parse_address_list(value)
    assert caught.value.reason is Reason.MALFORMED
