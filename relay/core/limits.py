"""Structural limits on messages; beyond them a message is malformed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MessageLimits:
    max_mime_depth: int = 100  # as Postfix's mime_nesting_limit
    max_parts: int = 1000
    max_header_count: int = 1000  # header fields per entity
    max_header_bytes: int = 256 * 1024  # header block of one entity
    max_line_bytes: int = 998 + 2  # RFC 5322 §2.1.1 plus CRLF
    max_message_bytes: int = 50 * 1024 * 1024


DEFAULT_LIMITS = MessageLimits()
