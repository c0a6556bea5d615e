"""Fixtures of the key tests; the material itself lives in keys_support (a unique module name)."""

from keys_support import gpgsm_verify, hsm, pki  # noqa: F401  (pytest fixtures)
