"""Fixtures of the encryption, DKIM and MDN tests; the material lives in crypt_support (a unique module name)."""

from crypt_support import crypt_pki  # noqa: F401  (pytest fixture)
