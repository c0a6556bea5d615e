"""The relay.toml sections of the message crypto steps: [keys], [dkim], [dkim_verify], [mdn].

[keys] names where the organisation's private keys live (a PKCS#11 token, or
a key file for decryption), [dkim] the DKIM key of each sending domain,
[mdn] how acknowledgements present themselves. Read as strictly as the other
service sections: an unknown key or a wrong type is a ConfigError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from ..dkim import DkimKeyTable, load_key_table
from ..keys.config import SOFTHSM2_MODULE, DEFAULT_SESSIONS, TokenConfig
from ..keys.errors import KeyStoreError
from ..keys.pin import PinSource
from ..trust.tomlsource import KeyPath
from .config import ConfigError, ConfigSource, _Section, read_toml
from .dkim_inbound import DkimVerifyConfig, parse_dkim_verify

DEFAULT_LOGIN_RETRY = 60.0  # seconds between two logins after a failed one: a wrong PIN must not lock the token


@dataclass(frozen=True, slots=True)
class KeysConfig:
    token: TokenConfig | None  # None: no PKCS#11 token
    sign_label: str | None  # key and certificate that sign on behalf of senders
    rsa_pss: bool
    decrypt_label: str | None  # key and certificate in the token that decrypt inbound mail
    decrypt_key_file: Path | None  # or a PEM key file and its certificate
    decrypt_cert_file: Path | None
    login_retry: float

    @property
    def decrypts(self) -> bool:
        return self.decrypt_label is not None or self.decrypt_key_file is not None


@dataclass(frozen=True, slots=True)
class MdnConfig:
    reporting_ua: str | None  # None: "<hostname>; relay"


@dataclass(frozen=True, slots=True)
class CryptoConfig:
    keys: KeysConfig
    dkim: DkimKeyTable
    mdn: MdnConfig
    dkim_verify: DkimVerifyConfig = DkimVerifyConfig()


def load_crypto_config(path: Path) -> CryptoConfig:
    document, lines = read_toml(path)
    return parse_crypto_config(document, path, lines)


def parse_crypto_config(document: Mapping[str, Any], path: Path, lines: Mapping[KeyPath, int] | None = None) -> CryptoConfig:
    base = path.parent
    source = ConfigSource(path, lines)
    return CryptoConfig(
        keys=_keys(_Section(document.get("keys", {}), ("keys",), source), base),
        dkim=_dkim(document.get("dkim", {}), source),
        mdn=_mdn(_Section(document.get("mdn", {}), ("mdn",), source)),
        dkim_verify=parse_dkim_verify(document.get("dkim_verify", {}), source),
    )


def _keys(section: _Section, base: Path) -> KeysConfig:
    token_label = _optional_string(section, "token")
    module = section.string("module", SOFTHSM2_MODULE)
    pin_env = _optional_string(section, "pin_env")
    pin_file = section.path("pin_file", base, None)
    sessions = section.integer("sessions", DEFAULT_SESSIONS, minimum=1)
    keys = KeysConfig(
        token=None,
        sign_label=_optional_string(section, "sign_label"),
        rsa_pss=section.boolean("rsa_pss", False),
        decrypt_label=_optional_string(section, "decrypt_label"),
        decrypt_key_file=section.path("decrypt_key_file", base, None),
        decrypt_cert_file=section.path("decrypt_cert_file", base, None),
        login_retry=section.number("login_retry", DEFAULT_LOGIN_RETRY, minimum=0.0),
    )
    section.finish()
    if (keys.decrypt_key_file is None) != (keys.decrypt_cert_file is None):
        section.fail("decrypt_key_file", "give both decrypt_key_file and decrypt_cert_file")
    if keys.decrypt_label and keys.decrypt_key_file:
        section.fail("decrypt_label", "decrypt with a token key or a key file, not both")
    needs_token = keys.sign_label is not None or keys.decrypt_label is not None
    if needs_token and token_label is None:
        section.fail("token", "sign_label and decrypt_label need the token's label")
    if token_label is None:
        return keys
    if (pin_env is None) == (pin_file is None):
        section.fail("pin_file", "give exactly one PIN source: pin_file (mode 0600) or pin_env; never the PIN itself")
    try:
        token = TokenConfig(module, token_label, PinSource(env=pin_env, file=pin_file), sessions)
    except KeyStoreError as error:
        section.fail("token", error.detail)
    return replace(keys, token=token)


def _dkim(table: Any, source: ConfigSource) -> DkimKeyTable:
    if not isinstance(table, dict):
        raise ConfigError(f"{source.where('dkim')}: [dkim] must be a table of sending domains")
    try:
        return load_key_table(table, source.path.parent)
    except ValueError as error:
        raise ConfigError(f"{source.where('dkim')}: [dkim] {error}") from None


def _mdn(section: _Section) -> MdnConfig:
    config = MdnConfig(reporting_ua=_optional_string(section, "reporting_ua"))
    section.finish()
    return config


def _optional_string(section: _Section, key: str) -> str | None:
    value = section._get(key, None)
    if value is not None and (not isinstance(value, str) or not value):
        section.fail(key, "must be a non-empty string")
    return value

