"""Verify one message: the pipeline from raw bytes to a Verdict.

parse (mime) -> signature (cms) -> signer path (certpath) -> binding and
identity (identity) -> directory agreement. Each step raises a Rejection
carrying its reason; the first one raised is the verdict, and the steps run
in the precedence order of the reason vocabulary.
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from cryptography import x509

from . import certpath, cms, identity, mime
from .bundle import Bundle
from .errors import Rejection
from .limits import DEFAULT_LIMITS, MessageLimits
from .reasons import Reason
from .trustview import TrustView
from .verdict import SignerIdentity, Verdict


def verify_message(
    raw: bytes,
    trust: TrustView,
    now: dt.datetime,
    limits: MessageLimits = DEFAULT_LIMITS,
    crlf_checked: bool = False,
) -> Verdict:
    """The verdict on one message as received (bytes exactly as on the wire or on disk).

    crlf_checked: the caller has found every line break of raw to be CRLF,
    as the SMTP edge does first; a file read from disk is checked here.
    """
    try:
        signed = mime.locate_signature(raw, limits, crlf_checked)
        data = cms.verify_signed_data(signed.signature, signed.detached_content)
        mime.check_content(signed, data.content, limits)
    except Rejection as refusal:
        return Verdict.reject(refusal.reason, refusal.detail)
    return _judge_signers(data, signed.sender.address, trust, now)


def _judge_signers(data: cms.SignedData, sender: str, trust: TrustView, now: dt.datetime) -> Verdict:
    bundles = trust.signer_bundles(sender)  # the same for every signer of the message
    verdict: Verdict | None = None
    for signer in data.signers:
        verdict = _judge_signer(signer.certificate, data.certificates, sender, bundles, trust, now)
        if not verdict.accepted:
            return verdict
    assert verdict is not None  # cms guarantees at least one SignerInfo
    return verdict


def _judge_signer(
    cert: x509.Certificate,
    presented: Sequence[x509.Certificate],
    sender: str,
    bundles: Sequence[Bundle],
    trust: TrustView,
    now: dt.datetime,
) -> Verdict:
    who = identity.read_identity(cert)
    if not bundles:
        return Verdict.reject(Reason.UNTRUSTED_ISSUER, f"no trust bundle applies to senders of {sender}", who)
    # Several bundles may be trusted for one sender; the signer passes if one
    # accepts, and otherwise the refusal that got furthest explains best.
    best: Verdict | None = None
    for bundle in bundles:
        verdict = _judge_in_bundle(cert, presented, who, sender, bundle, trust, now)
        if verdict.accepted:
            return verdict
        if best is None or verdict.code.rank > best.code.rank:
            best = verdict
    assert best is not None
    return best


def _judge_in_bundle(
    cert: x509.Certificate,
    presented: Sequence[x509.Certificate],
    who: SignerIdentity,
    sender: str,
    bundle: Bundle,
    trust: TrustView,
    now: dt.datetime,
) -> Verdict:
    try:
        certpath.validate_signer(cert, presented, bundle, now)
        identity.check_address_binding(cert, sender, bundle)
        identity.check_professional(who, bundle)
        _check_directory(who, sender, trust)
    except Rejection as refusal:
        return Verdict.reject(refusal.reason, refusal.detail, who, bundle.name)
    return Verdict.accept(who, bundle.name)


def _check_directory(who: SignerIdentity, sender: str, trust: TrustView) -> None:
    expected = trust.national_id_of(sender)
    if expected is not None and who.national_id != expected:
        raise Rejection(
            Reason.DIRECTORY_MISMATCH,
            f"directory lists {expected} for {sender}, signer certificate carries {who.national_id or 'none'}",
        )
