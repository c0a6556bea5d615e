"""The [keys], [dkim] and [mdn] sections: strict reading, and the reference lists exactly the keys read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from relay import devpki
from relay.smtp import config as service_config
from relay.smtp.config import ConfigError
from relay.smtp.crypto_config import DEFAULT_LOGIN_RETRY, parse_crypto_config

CONFIG = Path("/etc/relay/relay.toml")
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _keys(**table) -> dict:
    return {"keys": table}


def test_nothing_configured_neither_signs_nor_decrypts():
    config = parse_crypto_config({}, CONFIG)
    assert config.keys.token is None and config.keys.sign_label is None and not config.keys.decrypts
    assert not config.dkim.keys and config.mdn.reporting_ua is None


def test_a_token_with_its_pin_file_and_labels():
    config = parse_crypto_config(
        _keys(token="relay-org", pin_file="secrets/pin", sign_label="org", decrypt_label="org", sessions=2, login_retry=5), CONFIG
    )
    assert config.keys.token is not None and config.keys.token.token_label == "relay-org" and config.keys.token.sessions == 2
    assert config.keys.token.pin is not None and config.keys.token.pin.file == Path("/etc/relay/secrets/pin")
    assert (config.keys.sign_label, config.keys.decrypt_label, config.keys.login_retry) == ("org", "org", 5.0)


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"token": "t", "pin": "1234"}, "[keys] pin: unknown key"),
        ({"sign_label": "org"}, "[keys] token: sign_label and decrypt_label need"),
        ({"token": "t", "sign_label": "org"}, "[keys] pin_file: give exactly one PIN source"),
        ({"token": "t", "pin_file": "p", "pin_env": "PIN"}, "[keys] pin_file: give exactly one PIN source"),
        ({"decrypt_key_file": "k.pem"}, "[keys] decrypt_key_file: give both"),
        ({"token": "t", "pin_env": "PIN", "decrypt_label": "a", "decrypt_key_file": "k", "decrypt_cert_file": "c"}, "not both"),
        ({"token": "t", "pin_env": "PIN", "rsa_pss": "yes"}, "[keys] rsa_pss: must be true or false"),
        ({"token": "t", "pin_env": "PIN", "sessions": 0}, "[keys] sessions: must be between 1"),
    ],
)
def test_wrong_keys_sections_are_refused_naming_the_key(table, complaint):
    with pytest.raises(ConfigError) as error:
        parse_crypto_config(_keys(**table), CONFIG)
    assert complaint in str(error.value)


def test_dkim_keys_per_domain(tmp_path):
    key = devpki.new_key("rsa2048")
    (tmp_path / "dkim.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    document = {"dkim": {"Hopital.Example": {"selector": "s1", "key_file": "dkim.pem"}}}
    table = parse_crypto_config(document, tmp_path / "relay.toml").dkim
    assert table.key_for("hopital.example") is not None and table.key_for("hopital.example").selector == "s1"
    with pytest.raises(ConfigError, match=r"\[dkim\] DKIM key for other.example: give exactly selector and key_file"):
        parse_crypto_config({"dkim": {"other.example": {"selector": "s1"}}}, tmp_path / "relay.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_crypto_config({"dkim": {"other.example": {"selector": "s1", "key_file": "missing.pem"}}}, tmp_path / "relay.toml")


def test_a_dkim_error_names_the_line_of_its_domain_table(tmp_path):
    from relay.smtp.crypto_config import load_crypto_config

    path = tmp_path / "relay.toml"
    path.write_text('[service]\nhostname = "relay.test"\n\n[dkim."hospital.test"]\nselector = "s1"\n')
    with pytest.raises(ConfigError) as error:
        load_crypto_config(path)
    assert str(error.value).startswith(f"{path}:4: [dkim] DKIM key for hospital.test")  # [dkim] itself has no line


def test_mdn_section_is_strict():
    assert parse_crypto_config({"mdn": {"reporting_ua": "mx.example; relay"}}, CONFIG).mdn.reporting_ua == "mx.example; relay"
    with pytest.raises(ConfigError, match=r"\[mdn\] sender: unknown key"):
        parse_crypto_config({"mdn": {"sender": "x"}}, CONFIG)


def _documented(section: str) -> set[str]:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    body = page.split(f"\n## [{section}]\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", body, re.M))


def test_configuration_reference_lists_exactly_the_keys_read(monkeypatch):
    seen: dict[str, set[str]] = {}
    original = service_config._Section._get

    def recording(self, key, default):
        seen.setdefault(self.name, set()).add(key)
        return original(self, key, default)

    monkeypatch.setattr(service_config._Section, "_get", recording)
    parse_crypto_config({"keys": {"token": "t", "pin_env": "PIN"}}, CONFIG)
    assert _documented("keys") == seen["keys"]
    assert _documented("mdn") == seen["mdn"]
    assert _documented("dkim") == {"selector", "key_file"}
    assert f"| `login_retry` | `{DEFAULT_LOGIN_RETRY:g}` |" in (DOCS / "configuration.md").read_text(encoding="utf-8")
