"""Inbound DKIM in the running service: `relay serve` verifies the DKIM signatures of mail
from outside against the static [dkim_verify] records (no DNS: dns = false) and the sink
receives the results in Authentication-Results beside smime=.
"""

from __future__ import annotations

import re
import smtplib

import dkim
import pytest

from relay import devpki
from relay.dkim import DkimKey, dns_record, sign_message
from relay.smtp.dkim_inbound import chained_resolver
from tests.e2e.crypto_support import append
from tests.smtp.helpers import Relay, Sink, make_pki, message, service_toml, write_spec

HOSPITAL = "hospital.test"
STAFF = f"cardiologie@{HOSPITAL}"
PEER = "peer.test"
DOCTOR = f"dr.martin@{PEER}"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim-in")
    tls = make_pki(d / "tls")
    sink = Sink(d / "sink", 0).start()
    spec = {
        "bundles": [{"name": "smime", "purpose": "smime", "anchors": [str(tls.path("root.pem"))]}],
        "domains": [
            {"name": HOSPITAL, "local": True, "next_hop": {"host": "127.0.0.1", "port": sink.port, "tls": "none"},
             "policy": {"require_signature": False}},
            *({"name": name, "policy": {"require_signature": False}} for name in (PEER, "other.test")),
        ],
    }
    write_spec(d / "spec.json", spec)
    key = DkimKey(PEER, "sel2026", devpki.new_key("rsa2048"))
    other = DkimKey("other.test", "s1", devpki.new_key("rsa2048"))
    # one record inline, one from a zone-style file: both sources are read
    (d / "dkim-records.txt").write_text(f'; trust space keys\n{other.selector}._domainkey.{other.domain}. IN TXT "{dns_record(other)}"\n')
    config = service_toml(d, tls, listeners=("loopback",))
    append(config, f'[dkim_verify]\ndns = false\nrecords_file = "dkim-records.txt"\n[dkim_verify.records]\n"{key.selector}._domainkey.{PEER}" = "{dns_record(key)}"\n')
    relay = Relay(config, d / "spec.json").start()
    yield type("Env", (), {"relay": relay, "sink": sink, "key": key, "other": other})
    relay.stop()
    sink.stop()


def _deliver(env, data: bytes, marker: str, sender: str = DOCTOR) -> bytes:
    with smtplib.SMTP("127.0.0.1", env.relay.ports["loopback"], timeout=30) as client:
        client.ehlo("mx.peer.test")
        assert client.sendmail(sender, [STAFF], data) == {}
    received = env.sink.wait_for_marker(marker)
    return received.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ")


def _results(head: bytes) -> str:
    fields = [line for line in head.split(b"\r\n") if line.startswith(b"Authentication-Results: relay.test;")]
    assert len(fields) == 1, head
    return fields[0].decode()


def test_a_valid_signature_passes(env):
    data = sign_message(message(DOCTOR, [STAFF], subject="marker-dkim-pass"), env.key)
    results = _results(_deliver(env, data, "marker-dkim-pass"))
    assert f"dkim=pass header.d={PEER} header.s=sel2026" in results
    assert "smime=none" in results


def test_a_key_from_the_records_file_passes(env):
    data = sign_message(message("a@other.test", [STAFF], subject="marker-dkim-file"), env.other)
    assert "dkim=pass header.d=other.test header.s=s1" in _results(_deliver(env, data, "marker-dkim-file", "a@other.test"))


def test_a_tampered_body_fails(env):
    data = sign_message(message(DOCTOR, [STAFF], subject="marker-dkim-tampered", body="Dose: 5 mg.\r\n"), env.key)
    data = data.replace(b"Dose: 5 mg.", b"Dose: 50 mg.")
    results = _results(_deliver(env, data, "marker-dkim-tampered"))
    assert f"dkim=fail reason=\"body hash did not verify\" header.d={PEER} header.s=sel2026" in results
    assert "dkim=pass" not in results


def test_a_body_longer_than_l_fails(env):
    clear = message(DOCTOR, [STAFF], subject="marker-dkim-length")
    field = dkim.sign(clear, b"sel2026", PEER.encode(), env.key.dkimpy_key(), length=True, linesep=b"\r\n")
    data = field + clear + b"Appended after signing.\r\n"
    results = _results(_deliver(env, data, "marker-dkim-length"))
    assert 'dkim=fail reason="l= does not cover the whole body"' in results


def test_unsigned_mail_is_none_and_an_unknown_key_is_permerror(env):
    assert "dkim=none" in _results(_deliver(env, message(DOCTOR, [STAFF], subject="marker-dkim-none"), "marker-dkim-none"))
    stranger = DkimKey(PEER, "unpublished", devpki.new_key("rsa2048"))
    data = sign_message(message(DOCTOR, [STAFF], subject="marker-dkim-nokey"), stranger)
    assert 'dkim=permerror reason="no key for signature"' in _results(_deliver(env, data, "marker-dkim-nokey"))


def test_the_audit_records_the_statuses(env):
    data = sign_message(message(DOCTOR, [STAFF], subject="marker-dkim-audit"), env.key)
    _deliver(env, data, "marker-dkim-audit")
    assert any(e.get("dkim_results") == ["pass"] for e in env.relay.events("done"))


@pytest.mark.parametrize(
    "section, files, error",
    [
        ({"dns": "no"}, {}, "dns: must be true or false"),
        ({"records": {"example.org": "v=DKIM1; p=x"}}, {}, "records: not `selector._domainkey.domain"),
        ({"records_file": "zone.txt"}, {"zone.txt": "s._domainkey.a.test TXT v=DKIM1\n"}, "line 1: the TXT value must be quoted"),
        ({"records_file": "missing.txt"}, {}, "missing.txt: No such file"),
        ({"records_file": "zone.txt", "records": {"s._domainkey.a.test": "v=DKIM1; p=y"}},
         {"zone.txt": 's._domainkey.a.test IN TXT "v=DKIM1; " "p=x"\n'}, "s._domainkey.a.test is also in"),
        ({"resolver": "dns"}, {}, "resolver: unknown key"),
    ],
)
def test_dkim_verify_section_errors_name_the_key(tmp_path, section, files, error):
    from relay.smtp.config import ConfigError, ConfigSource
    from relay.smtp.dkim_inbound import parse_dkim_verify

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=re.escape(error)):
        parse_dkim_verify(section, ConfigSource(tmp_path / "relay.toml"))


def test_split_txt_strings_are_joined():
    from relay.dkim.records import parse_txt_records

    assert parse_txt_records('S._domainkey.A.test. IN TXT "v=DKIM1; " "p=ab"\n# note\n') == {"s._domainkey.a.test": "v=DKIM1; p=ab"}


def test_the_chained_resolver_leaves_each_resolver_its_own_timeout():
    seen: list[float] = []

    def none_here(name, timeout=1.0):
        return None

    def configured(name, timeout=0.75):  # like dns_resolver(timeout=dns_timeout)
        seen.append(timeout)
        return b"v=DKIM1; p="

    resolve = chained_resolver(none_here, configured)
    assert resolve(b"s._domainkey.example.test.") == b"v=DKIM1; p="
    assert resolve(b"s._domainkey.example.test.", 2.0) == b"v=DKIM1; p="
    assert seen == [0.75, 2.0]
