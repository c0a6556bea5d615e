"""DKIM with dkimpy: round trips, tampering, l=, ed25519, results wording; keys from a static table only."""

from __future__ import annotations

import re

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypt_support import MESSAGE, openssl
from relay import devpki
from relay.dkim import (
    DkimAlgorithm,
    DkimKey,
    DkimKeyTable,
    DkimLookupFailed,
    DkimStatus,
    authentication_results,
    dns_record,
    has_signature,
    load_key,
    load_key_table,
    sign_message,
    static_resolver,
    verify_dkim,
)

DOMAIN = "hopital-test.mssante.fr"


@pytest.fixture(scope="module")
def rsa_key() -> DkimKey:
    return DkimKey(DOMAIN, "rsa2026", devpki.new_key("rsa2048"))


@pytest.fixture(scope="module")
def ed_key() -> DkimKey:
    return DkimKey(DOMAIN, "ed2026", devpki.new_key("ed25519"))


@pytest.fixture(scope="module")
def resolver(rsa_key, ed_key):
    return static_resolver({f"{k.selector}._domainkey.{k.domain}": dns_record(k) for k in (rsa_key, ed_key)})


def _tags(signed: bytes) -> dict[str, str]:
    field = re.match(rb"DKIM-Signature: (.*?)\r\n(?! )", signed, re.S).group(1)  # type: ignore[union-attr]
    unfolded = re.sub(rb"\r\n[ \t]", b" ", field).decode()
    return {k.strip(): v.strip() for k, _, v in (t.partition("=") for t in unfolded.split(";") if t.strip())}


@pytest.mark.parametrize("which", ["rsa_key", "ed_key"])
def test_sign_then_verify(request, resolver, which):
    key: DkimKey = request.getfixturevalue(which)
    signed = sign_message(MESSAGE, key)
    assert signed.endswith(MESSAGE)
    tags = _tags(signed)
    assert tags["a"] == key.algorithm.value
    assert tags["c"] == "relaxed/relaxed"
    assert (tags["d"], tags["s"]) == (DOMAIN, key.selector)
    signed_fields = {h.strip() for h in tags["h"].split(":")}
    assert {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"} <= signed_fields
    assert "l" not in tags
    (result,) = verify_dkim(signed, resolver)
    assert result.status is DkimStatus.PASS
    assert result.method_result() == f"dkim=pass header.d={DOMAIN} header.s={key.selector}"


def test_ed25519_is_rfc8463(ed_key):
    assert ed_key.algorithm is DkimAlgorithm.ED25519_SHA256
    assert dns_record(ed_key).startswith("v=DKIM1; k=ed25519; p=")


def test_relaxed_canonicalisation_survives_refolding(rsa_key, resolver):
    signed = sign_message(MESSAGE, rsa_key)
    refolded = signed.replace(b"Subject: Compte rendu de consultation", b"Subject:  Compte rendu\r\n\tde consultation")
    refolded = refolded.replace(b"normaux.\r\n", b"normaux.   \r\n\r\n\r\n")
    assert verify_dkim(refolded, resolver)[0].status is DkimStatus.PASS


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda m: m.replace(b"normaux", b"anormaux"), "body hash did not verify"),
        (lambda m: m.replace(b"Subject: Compte rendu", b"Subject: Compte-rendu"), "signature did not verify"),
        (lambda m: m.replace(b"To: Dr Martin", b"To: Dr Durand"), "signature did not verify"),
    ],
    ids=["body", "subject", "to"],
)
def test_tampering_fails(rsa_key, ed_key, resolver, change, reason):
    for key in (rsa_key, ed_key):
        (result,) = verify_dkim(change(sign_message(MESSAGE, key)), resolver)
        assert result.status is DkimStatus.FAIL
        assert result.reason == reason


def test_a_length_tag_shorter_than_the_body_fails(rsa_key, resolver):
    field = dkim.sign(
        MESSAGE, rsa_key.selector.encode(), DOMAIN.encode(), rsa_key.dkimpy_key(),
        canonicalize=(b"relaxed", b"relaxed"), include_headers=[b"from", b"to", b"subject"], length=True,
    )
    signed = field + MESSAGE
    assert "l" in _tags(signed)
    assert verify_dkim(signed, resolver)[0].status is DkimStatus.PASS  # l= covering the whole body
    extended = signed + b"\r\nCliquez ici: http://example.test/\r\n"
    assert dkim.verify(extended, dnsfunc=resolver)  # dkimpy alone accepts the addition...
    (result,) = verify_dkim(extended, resolver)  # ...the relay does not
    assert result.status is DkimStatus.FAIL
    assert result.method_result() == f'dkim=fail reason="l= does not cover the whole body" header.d={DOMAIN} header.s=rsa2026'


def test_no_signature_no_key_and_lookup_failure(rsa_key):
    assert [r.status for r in verify_dkim(MESSAGE, static_resolver({}))] == [DkimStatus.NONE]
    signed = sign_message(MESSAGE, rsa_key)
    (missing,) = verify_dkim(signed, static_resolver({}))
    assert (missing.status, missing.reason) == (DkimStatus.PERMERROR, "no key for signature")

    def unreachable(name, timeout=5):
        raise DkimLookupFailed("timeout")

    assert verify_dkim(signed, unreachable)[0].status is DkimStatus.TEMPERROR
    wrong = static_resolver({f"rsa2026._domainkey.{DOMAIN}": dns_record(DkimKey(DOMAIN, "x", devpki.new_key("rsa2048")))})
    assert verify_dkim(signed, wrong)[0].status is DkimStatus.FAIL


def test_every_signature_is_reported(rsa_key, ed_key, resolver):
    twice = sign_message(sign_message(MESSAGE, rsa_key), ed_key)
    results = verify_dkim(twice, resolver)
    assert [(r.status, r.selector) for r in results] == [(DkimStatus.PASS, "ed2026"), (DkimStatus.PASS, "rsa2026")]
    assert authentication_results("relay.hopital-test.mssante.fr", results) == (
        f"relay.hopital-test.mssante.fr; dkim=pass header.d={DOMAIN} header.s=ed2026; "
        f"dkim=pass header.d={DOMAIN} header.s=rsa2026"
    )
    assert authentication_results("mx", verify_dkim(MESSAGE, resolver)) == "mx; dkim=none"


def test_key_files_and_key_table(tmp_path):
    files = {}
    for kind, args in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]), ("ed", ["-algorithm", "ed25519"])):
        files[kind] = tmp_path / f"{kind}.pem"
        done = openssl("genpkey", *args, "-out", str(files[kind]))
        assert done.returncode == 0, done.stderr.decode()
    rsa_key = load_key("Hopital-Test.MSSante.fr", "a", files["rsa"])
    ed_key = load_key("labo.mssante.fr", "b", files["ed"])
    table = DkimKeyTable.of(rsa_key, ed_key)
    assert table.key_for("hopital-test.mssante.fr.") is rsa_key
    assert table.key_for("LABO.mssante.fr") is ed_key
    assert table.key_for("autre.mssante.fr") is None
    resolver = static_resolver({f"{k.selector}._domainkey.{k.domain}": dns_record(k) for k in (rsa_key, ed_key)})
    for key in (rsa_key, ed_key):
        assert verify_dkim(sign_message(MESSAGE, key), resolver)[0].status is DkimStatus.PASS
    (tmp_path / "junk.pem").write_bytes(b"not a key")
    with pytest.raises(ValueError, match="cannot read"):
        load_key(DOMAIN, "x", tmp_path / "junk.pem")
    with pytest.raises(ValueError, match="only RSA and Ed25519"):
        p256 = tmp_path / "p256.pem"
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(p256))
        load_key(DOMAIN, "x", p256)


def test_key_table_from_configuration(tmp_path):
    import tomllib

    (tmp_path / "dkim").mkdir()
    assert openssl("genpkey", "-algorithm", "ed25519", "-out", str(tmp_path / "dkim" / "ed.pem")).returncode == 0
    config = tomllib.loads('''
[dkim."hopital-test.mssante.fr"]
selector = "ed2026"
key_file = "dkim/ed.pem"
''')
    table = load_key_table(config["dkim"], tmp_path)
    key = table.key_for(DOMAIN)
    assert key is not None and (key.selector, key.algorithm) == ("ed2026", DkimAlgorithm.ED25519_SHA256)
    for bad, message in (
        ({DOMAIN: {"selector": "s"}}, "give exactly selector and key_file"),
        ({DOMAIN: {"selector": 1, "key_file": "dkim/ed.pem"}}, "are strings"),
        ({DOMAIN: {"selector": "s", "key_file": "dkim/missing.pem"}}, "cannot read"),
    ):
        with pytest.raises(ValueError, match=message):
            load_key_table(bad, tmp_path)


def test_unsignable_message(rsa_key):
    with pytest.raises(ValueError, match="DKIM signing refused: the message needs exactly one From"):
        sign_message(b"To: someone@example.test\r\n\r\nno From field\r\n", rsa_key)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_mangled_signatures_never_crash(data):
    signed = _MANGLE_SIGNED
    end = signed.index(b"\r\nFrom:")
    field = bytearray(signed[:end])
    for _ in range(data.draw(st.integers(1, 6))):
        index = data.draw(st.integers(len(b"DKIM-Signature: "), len(field) - 1))
        field[index] = data.draw(st.sampled_from(b"=;: abcdlhsvx0129+/\t"))
    mangled = bytes(field) + signed[end:]
    for result in verify_dkim(mangled, _MANGLE_RESOLVER):
        assert result.status in (DkimStatus.PASS, DkimStatus.FAIL, DkimStatus.PERMERROR, DkimStatus.NONE)
        assert "\n" not in result.method_result()


_MANGLE_KEY = DkimKey(DOMAIN, "m", devpki.new_key("rsa2048"))
_MANGLE_RESOLVER = static_resolver({f"m._domainkey.{DOMAIN}": dns_record(_MANGLE_KEY)})
_MANGLE_SIGNED = sign_message(MESSAGE, _MANGLE_KEY)


def test_crafted_domain_and_selector_never_reach_the_results_header():
    from relay.dkim.verification import DkimResult, DkimStatus

    crafted = DkimResult(DkimStatus.FAIL, domain="evil.example\r\nX-Injected: 1", selector="s1\r\n t=1", reason="bad")
    assert crafted.method_result() == 'dkim=fail reason="bad"'
    plain = DkimResult(DkimStatus.PASS, domain="hopital-demo.mssante.fr", selector="relay2026")
    assert plain.method_result() == "dkim=pass header.d=hopital-demo.mssante.fr header.s=relay2026"


def _dkimpy_signature_count(message: bytes) -> int:
    try:
        parsed = dkim.DKIM(message)
    except IndexError:  # dkimpy cannot read a header that starts with a continuation line
        return 0
    return sum(1 for name, _ in parsed.headers if name.lower() == b"dkim-signature")


@pytest.mark.parametrize(
    "message, expected",
    [
        (b"From: a@b\r\nDKIM-Signature: v=1\r\n\r\nbody\r\n", True),
        (b"From: a@b\r\ndkim-signature:v=1\r\n\r\nbody\r\n", True),
        (b"DKIM-Signature: v=1\n\nbody\n", True),
        (b"From: a@b\r\n\r\nDKIM-Signature: v=1 (in the body)\r\n", False),
        (b"From: a@b\n\nDKIM-Signature: v=1 (in the body)\r\n\r\n", False),
        (b"X-Note: folded\r\n DKIM-Signature: v=1\r\n\r\n", False),
        (b"X-DKIM-Signature: v=1\r\n\r\n", False),
    ],
)
def test_has_signature_reads_the_header_block_only(message, expected):
    assert has_signature(message) is expected
    assert (_dkimpy_signature_count(message) > 0) is expected


_header_lines = st.sampled_from(
    [b"From: a@b", b"DKIM-Signature: v=1; d=x", b"dkim-signature:x", b" folded DKIM-Signature: x", b"To: c@d", b"", b"X: y"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_header_lines, max_size=8), st.sampled_from([b"\r\n", b"\n"]))
def test_has_signature_never_misses_what_dkimpy_counts(lines, eol):
    message = eol.join(lines) + eol + eol + b"body" + eol
    if _dkimpy_signature_count(message) > 0:
        assert has_signature(message)
