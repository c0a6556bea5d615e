"""PIN sources and key store configuration: no PIN in the configuration, no readable PIN file."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.keys.config import DEFAULT_SESSIONS, SOFTHSM2_MODULE, TokenConfig
from relay.keys.errors import KeyErrorCode, KeyStoreError
from relay.keys.pin import PinSource
from relay.smtp.config import ConfigError
from relay.smtp.crypto_config import parse_crypto_config


def _pin_file(tmp_path, mode: int, text: str = "1234\n"):
    path = tmp_path / "pin"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_pin_file_is_read_without_its_newline(tmp_path, mode):
    assert PinSource(file=_pin_file(tmp_path, mode)).read() == "1234"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_a_pin_file_open_to_group_or_others_is_refused(tmp_path, mode):
    with pytest.raises(KeyStoreError) as error:
        PinSource(file=_pin_file(tmp_path, mode)).read()
    assert error.value.code is KeyErrorCode.PIN_FILE_PERMISSIONS
    assert "1234" not in str(error.value)


def test_missing_and_empty_pin_sources_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("RELAY_TEST_NO_PIN", raising=False)
    for source in (PinSource(env="RELAY_TEST_NO_PIN"), PinSource(file=tmp_path / "absent"), PinSource(file=_pin_file(tmp_path, 0o600, "\n"))):
        with pytest.raises(KeyStoreError) as error:
            source.read()
        assert error.value.code is KeyErrorCode.PIN_UNAVAILABLE


def test_the_pin_comes_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("RELAY_TEST_PIN_VAR", "8642")
    assert PinSource(env="RELAY_TEST_PIN_VAR").read() == "8642"


def test_exactly_one_pin_source(tmp_path):
    for kwargs in ({}, {"env": "X", "file": tmp_path / "pin"}):
        with pytest.raises(KeyStoreError) as error:
            PinSource(**kwargs)
        assert error.value.code is KeyErrorCode.CONFIG


def _keys_section(tmp_path: Path, **table) -> TokenConfig | None:
    """[keys] through the relay.toml reader the service uses."""
    return parse_crypto_config({"keys": table}, tmp_path / "relay.toml").keys.token


def test_configuration_from_the_keys_section(tmp_path):
    config = _keys_section(tmp_path, token="hospital", pin_file="pin", sessions=8)
    assert config == TokenConfig(SOFTHSM2_MODULE, "hospital", PinSource(file=tmp_path / "pin"), 8)
    assert _keys_section(tmp_path, token="hospital", pin_env="P").sessions == DEFAULT_SESSIONS


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"token": "hospital", "pin": "1234"}, "[keys] pin: unknown key"),  # a literal PIN never goes in the configuration
        ({"token": "hospital", "pin_env": "P", "colour": "blue"}, "[keys] colour: unknown key"),
        ({"pin_env": "P", "sign_label": "org"}, "[keys] token: sign_label and decrypt_label need the token's label"),
        ({"token": "", "pin_env": "P"}, "[keys] token: must be a non-empty string"),
        ({"token": "hospital", "pin_env": "P", "sessions": 0}, "[keys] sessions: must be between 1"),
        ({"token": "hospital", "pin_env": "P", "sessions": "four"}, "[keys] sessions: must be an integer"),
        ({"token": 7, "pin_env": "P"}, "[keys] token: must be a non-empty string"),
        ({"token": "hospital", "module": "", "pin_env": "P"}, "[keys] module: must be a non-empty string"),
    ],
)
def test_bad_configuration_is_refused(tmp_path, table, complaint):
    with pytest.raises(ConfigError) as error:
        _keys_section(tmp_path, **table)
    assert complaint in str(error.value)
    assert "1234" not in str(error.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"module": "", "token_label": "hospital"},
        {"module": SOFTHSM2_MODULE, "token_label": ""},
        {"module": SOFTHSM2_MODULE, "token_label": "hospital", "sessions": 0},
    ],
)
def test_a_token_configuration_is_complete_however_it_is_built(kwargs):
    with pytest.raises(KeyStoreError) as error:
        TokenConfig(pin=None, **kwargs)
    assert error.value.code is KeyErrorCode.CONFIG
