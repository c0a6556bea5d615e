"""DKIM (RFC 6376, RFC 8463) with dkimpy: signing per sending domain, verification, results.

Lives at the edge rather than in the pure core: dkimpy reads the clock (the
t= tag, expiry checks) and looks keys up in the DNS through a resolver that
the caller chooses (a static key table in tests, the DNS in service).
"""

from .resolver import DkimLookupFailed, TxtResolver, dns_resolver, static_resolver
from .signing import SIGNED_HEADERS, DkimAlgorithm, DkimKey, DkimKeyTable, dns_record, load_key, load_key_table, sign_message
from .verification import NO_SIGNATURE, DkimResult, DkimStatus, authentication_results, has_signature, verify_dkim

__all__ = [
    "NO_SIGNATURE",
    "SIGNED_HEADERS",
    "DkimAlgorithm",
    "DkimKey",
    "DkimKeyTable",
    "DkimLookupFailed",
    "DkimResult",
    "DkimStatus",
    "TxtResolver",
    "authentication_results",
    "dns_record",
    "dns_resolver",
    "has_signature",
    "load_key",
    "load_key_table",
    "sign_message",
    "static_resolver",
    "verify_dkim",
]
