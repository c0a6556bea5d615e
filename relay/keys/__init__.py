"""Key providers (edge): private keys in a PKCS#11 token or in files, as signing callables.

The core never sees a key: it receives a `relay.core.smime_sign.SigningKey`
whose `sign` callable runs wherever the key lives.
"""
