"""relay: a secure health messaging relay (MSSanté, Direct Secure Messaging)."""

__version__ = "0.1.0"
