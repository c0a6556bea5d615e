"""Signing through a real SoftHSM2 token: verifiers, PIN handling, session loss, threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pkcs11
import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, Mechanism
from pkcs11.util.rsa import decode_rsa_private_key
from pkcs11.util.x509 import decode_x509_certificate

from keys_support import (
    EC_TOKEN, KEY_LABEL, MESSAGE, PIN_ENV, RSA_TOKEN, SIGNING_TIME, openssl_verify, split_signed,
)
from relay import devpki
from relay.core.smime_sign import PSS_SALT_LENGTH, SignatureScheme, SigningKey, sign_message
from relay.keys.config import SOFTHSM2_MODULE, KeyConfig, TokenConfig
from relay.keys.errors import KeyErrorCode, KeyStoreError
from relay.keys.pin import PinSource
from relay.keys.pkcs11_token import Pkcs11Token
from relay.keys.token_keys import load_token_key, mechanism_plan, token_signer


@pytest.fixture
def rsa_token(hsm):
    with Pkcs11Token(hsm.config(RSA_TOKEN)) as token:
        yield token


@pytest.mark.parametrize(
    "token_label, pss, scheme",
    [(RSA_TOKEN, False, SignatureScheme.RSA_PKCS1V15), (RSA_TOKEN, True, SignatureScheme.RSA_PSS), (EC_TOKEN, False, SignatureScheme.ECDSA)],
)
def test_token_signature_is_accepted_by_openssl_and_gpgsm(hsm, pki, gpgsm_verify, token_label, pss, scheme):
    with Pkcs11Token(hsm.config(token_label)) as token:
        key = load_token_key(token, KeyConfig(KEY_LABEL, rsa_pss=pss))
        assert key.scheme is scheme
        assert key.chain == (pki.ca.cert,)  # the root stays out: verifiers hold it as an anchor
        signed = sign_message(MESSAGE, key, SIGNING_TIME)
    openssl = openssl_verify(signed, pki.ca_file)
    assert openssl.returncode == 0, openssl.stderr.decode()
    gpgsm = gpgsm_verify(signed)
    assert gpgsm.returncode == 0 and b"Good signature" in gpgsm.stderr, gpgsm.stderr.decode()


def test_the_private_key_cannot_leave_the_token(rsa_token):
    key = rsa_token.run(lambda pooled: pooled.private_key(KEY_LABEL))
    assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
    assert key[Attribute.SIGN]


def _verifies(key, data: bytes, signature: bytes) -> bool:
    public = key.certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    elif key.scheme is SignatureScheme.RSA_PSS:
        public.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), PSS_SALT_LENGTH), hashes.SHA256())
    else:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    return True


def test_wrong_pin_is_a_clear_error(hsm, monkeypatch):
    monkeypatch.setenv("RELAY_TEST_WRONG_PIN", "0000")
    token = Pkcs11Token(hsm.config(RSA_TOKEN, pin=PinSource(env="RELAY_TEST_WRONG_PIN")))
    with pytest.raises(KeyStoreError) as error:
        token.open()
    assert error.value.code is KeyErrorCode.PIN_INCORRECT
    assert "0000" not in str(error.value)


def test_unknown_token_and_label_are_clear_errors(hsm, rsa_token):
    with pytest.raises(KeyStoreError) as error:
        Pkcs11Token(hsm.config("no-such-token")).open()
    assert error.value.code is KeyErrorCode.TOKEN_NOT_FOUND
    with pytest.raises(KeyStoreError) as error:
        load_token_key(rsa_token, KeyConfig("no-such-key"))
    assert error.value.code is KeyErrorCode.KEY_NOT_FOUND


def test_missing_module_is_a_clear_error(tmp_path):
    config = TokenConfig(str(tmp_path / "libvendor.so"), RSA_TOKEN, PinSource(env=PIN_ENV))
    with pytest.raises(KeyStoreError) as error:
        Pkcs11Token(config).open()
    assert error.value.code is KeyErrorCode.MODULE_NOT_FOUND


def test_a_key_under_the_wrong_certificate_is_refused(hsm, pki):
    """Another key filed under the certificate's label would sign garbage: refused at load."""
    stranger = devpki.new_key("rsa2048").private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    with Pkcs11Token(hsm.config(RSA_TOKEN)) as token:
        with token.write_session() as session:  # session objects: gone when the session closes
            cert = decode_x509_certificate(pki.rsa.cert.public_bytes(serialization.Encoding.DER))
            session.create_object({**cert, Attribute.LABEL: "mismatch", Attribute.TOKEN: False})
            session.create_object(
                {**decode_rsa_private_key(stranger), Attribute.LABEL: "mismatch", Attribute.TOKEN: False,
                 Attribute.PRIVATE: True}
            )
            with pytest.raises(KeyStoreError) as error:
                load_token_key(token, KeyConfig("mismatch"))
    assert error.value.code is KeyErrorCode.KEY_NOT_FOUND
    assert "is not the key of its certificate" in error.value.detail


def test_a_session_closed_under_the_store_recovers(rsa_token):
    key = load_token_key(rsa_token, KeyConfig(KEY_LABEL))
    assert _verifies(key, b"first", key.sign(b"first"))
    # Close every pooled session behind the store's back: the handles it holds go stale.
    rsa_token.run(lambda pooled: pooled.session.close())
    assert _verifies(key, b"after", key.sign(b"after"))


def test_a_finalized_module_recovers_with_a_new_login(rsa_token):
    key = load_token_key(rsa_token, KeyConfig(KEY_LABEL))
    key.sign(b"warm the pool")
    pkcs11.lib(SOFTHSM2_MODULE).finalize()  # every session and the login are gone
    assert _verifies(key, b"after finalize", key.sign(b"after finalize"))


def test_a_token_that_stays_lost_gives_session_lost(rsa_token):
    def close_then_use(pooled):
        pooled.session.close()
        return pooled.session.generate_random(128)

    with pytest.raises(KeyStoreError) as error:
        rsa_token.run(close_then_use)
    assert error.value.code is KeyErrorCode.SESSION_LOST
    key = load_token_key(rsa_token, KeyConfig(KEY_LABEL))  # and the store still works afterwards
    assert _verifies(key, b"still", key.sign(b"still"))


def test_recovery_with_a_changed_pin_reports_the_pin(hsm, monkeypatch):
    monkeypatch.setenv("RELAY_TEST_ROTATED_PIN", "4721-relay")
    with Pkcs11Token(hsm.config(RSA_TOKEN, pin=PinSource(env="RELAY_TEST_ROTATED_PIN"))) as token:
        key = load_token_key(token, KeyConfig(KEY_LABEL))
        monkeypatch.setenv("RELAY_TEST_ROTATED_PIN", "9999")
        pkcs11.lib(SOFTHSM2_MODULE).finalize()
        with pytest.raises(KeyStoreError) as error:
            key.sign(b"x")
    assert error.value.code is KeyErrorCode.PIN_INCORRECT


@pytest.mark.parametrize("token_label, pss", [(RSA_TOKEN, False), (RSA_TOKEN, True), (EC_TOKEN, False)])
def test_many_threads_sign_concurrently_and_every_signature_verifies(hsm, token_label, pss):
    threads, per_thread, sessions = 8, 50, 3
    with Pkcs11Token(hsm.config(token_label, sessions=sessions)) as token:
        key = load_token_key(token, KeyConfig(KEY_LABEL, rsa_pss=pss))
        opened = set()
        lock = threading.Lock()

        def work(n: int) -> list[tuple[bytes, bytes]]:
            out = []
            for i in range(per_thread):
                data = f"thread {n} signature {i}".encode()
                out.append((data, key.sign(data)))
                token.run(lambda pooled: _note(pooled, opened, lock))
            return out

        with ThreadPoolExecutor(threads) as pool:
            results = [pair for chunk in pool.map(work, range(threads)) for pair in chunk]
    assert len(results) == threads * per_thread
    assert all(_verifies(key, data, signature) for data, signature in results)
    assert 1 <= len(opened) <= sessions  # the pool stays within its bound


def _note(pooled, opened: set, lock: threading.Lock) -> None:
    with lock:
        opened.add(pooled.session.handle)


def test_signed_messages_from_threads_all_verify_with_openssl(hsm, pki):
    with Pkcs11Token(hsm.config(EC_TOKEN, sessions=2)) as token:
        key = load_token_key(token, KeyConfig(KEY_LABEL))
        with ThreadPoolExecutor(4) as pool:
            messages = list(pool.map(lambda n: sign_message(MESSAGE.replace(b"0001", b"%04d" % n), key, SIGNING_TIME), range(8)))
    for signed in messages:
        assert openssl_verify(signed, pki.ca_file).returncode == 0
        assert cms.ContentInfo.load(split_signed(signed).signature)["content"]["signer_infos"][0]["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"


_RAW_ONLY = frozenset({Mechanism.RSA_PKCS, Mechanism.RSA_PKCS_PSS, Mechanism.ECDSA})


def test_combined_mechanisms_are_preferred_when_offered(rsa_token):
    offered = rsa_token.mechanisms()
    assert mechanism_plan(SignatureScheme.RSA_PKCS1V15, offered).mechanism is Mechanism.SHA256_RSA_PKCS
    assert mechanism_plan(SignatureScheme.RSA_PSS, offered).mechanism is Mechanism.SHA256_RSA_PKCS_PSS
    assert mechanism_plan(SignatureScheme.RSA_PKCS1V15, _RAW_ONLY).mechanism is Mechanism.RSA_PKCS


@pytest.mark.parametrize("pss", [False, True])
def test_raw_rsa_mechanisms_of_vendor_modules_give_the_same_valid_signatures(rsa_token, pki, gpgsm_verify, pss):
    """A module offering only CKM_RSA_PKCS / CKM_RSA_PKCS_PSS: the digest (in a DigestInfo) is made here."""
    scheme = SignatureScheme.RSA_PSS if pss else SignatureScheme.RSA_PKCS1V15
    plan = mechanism_plan(scheme, _RAW_ONLY)
    assert plan.hash_outside
    key = SigningKey(pki.rsa.cert, (pki.ca.cert,), scheme, token_signer(rsa_token, KEY_LABEL, plan))
    assert _verifies(key, b"raw mechanism", key.sign(b"raw mechanism"))
    signed = sign_message(MESSAGE, key, SIGNING_TIME)
    assert openssl_verify(signed, pki.ca_file).returncode == 0
    gpgsm = gpgsm_verify(signed)
    assert gpgsm.returncode == 0 and b"Good signature" in gpgsm.stderr
