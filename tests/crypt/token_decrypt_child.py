"""Decrypt messages through a SoftHSM2 token, in a process of its own.

SoftHSM2 reads its configuration once per process, so the token tests run
this script as a child with their own SOFTHSM2_CONF instead of disturbing
the token set other tests have already opened in the test process.

usage: token_decrypt_child.py TOKEN LABEL PIN_ENV MESSAGE...
Prints one JSON object per message: the outcome, and the decrypted entity
(base64) or the rejection reason and detail or the key store error code.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from relay.core.errors import Rejection
from relay.core.smime_decrypt import decrypt_message
from relay.keys.config import SOFTHSM2_MODULE, TokenConfig
from relay.keys.decrypt import load_token_decryption_key
from relay.keys.errors import KeyStoreError
from relay.keys.pin import PinSource
from relay.keys.pkcs11_token import Pkcs11Token


def main(token_label: str, label: str, pin_env: str, *messages: str) -> None:
    with Pkcs11Token(TokenConfig(SOFTHSM2_MODULE, token_label, PinSource(env=pin_env))) as token:
        key = load_token_decryption_key(token, label)
        for path in messages:
            try:
                decrypted = decrypt_message(Path(path).read_bytes(), [key])
                outcome = {"ok": True, "entity": base64.b64encode(decrypted.entity).decode(), "cipher": decrypted.cipher}
            except Rejection as rejection:
                outcome = {"ok": False, "reason": rejection.reason, "detail": rejection.detail}
            except KeyStoreError as error:
                outcome = {"ok": False, "code": error.code, "detail": error.detail}
            print(json.dumps({"message": Path(path).name, **outcome}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
