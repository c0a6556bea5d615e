"""The typed outcome of verifying one message."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .pickled import by_fields
from .reasons import Reason


class Decision(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


@by_fields
@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """Who signed, as read from the signer certificate."""

    subject: str
    fingerprint_sha256: str
    email: str | None = None
    national_id: str | None = None
    profession: str | None = None
    organisation_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "fingerprint_sha256": self.fingerprint_sha256,
            "email": self.email,
            "national_id": self.national_id,
            "profession": self.profession,
            "organisation_id": self.organisation_id,
        }


@by_fields
@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    code: Reason
    detail: str
    signer: SignerIdentity | None = None
    bundle: str | None = None

    @property
    def accepted(self) -> bool:
        return self.decision is Decision.ACCEPT

    @classmethod
    def accept(cls, signer: SignerIdentity, bundle: str | None, detail: str = "") -> Verdict:
        return cls(Decision.ACCEPT, Reason.OK, detail or Reason.OK.description, signer, bundle)

    @classmethod
    def reject(
        cls, code: Reason, detail: str, signer: SignerIdentity | None = None, bundle: str | None = None
    ) -> Verdict:
        return cls(Decision.REJECT, code, detail, signer, bundle)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": str(self.decision),
            "code": str(self.code),
            "detail": self.detail,
            "signer": self.signer.as_dict() if self.signer else None,
        }
