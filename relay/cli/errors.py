"""Errors a command reports as one line on stderr with exit status 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad arguments or unreadable input named on the command line."""
