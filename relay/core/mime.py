"""Strict MIME reading of a message and location of its S/MIME signature.

(stub: interface fixed, implementation pending)
"""

from __future__ import annotations

from dataclasses import dataclass

from .limits import MessageLimits


@dataclass(frozen=True, slots=True)
class Mailbox:
    local_part: str
    domain: str
    display_name: str | None = None

    @property
    def address(self) -> str:
        """local@domain with the domain lower-cased (local parts are case-sensitive)."""
        return f"{self.local_part}@{self.domain.lower()}"


@dataclass(frozen=True, slots=True)
class SignedMessage:
    sender: Mailbox  # the single mailbox of the root entity's From
    signature: bytes  # DER of the CMS ContentInfo
    detached_content: bytes | None  # exact bytes of the first part of multipart/signed, else None


def locate_signature(raw: bytes, limits: MessageLimits) -> SignedMessage:
    """Parse strictly; return the root-level signature or raise Rejection(malformed|unsigned)."""
    raise NotImplementedError


def check_signed_content(content: bytes, sender: Mailbox, limits: MessageLimits) -> None:
    """Parse the signed content strictly; a From inside it must agree with the outer sender."""
    raise NotImplementedError
