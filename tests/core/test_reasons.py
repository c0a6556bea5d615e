from relay.core.reasons import Reason
from relay.core.verdict import Decision, SignerIdentity, Verdict

PRECEDENCE = [
    {"malformed", "unsigned"},
    {"decryption-failed"},
    {"signature-invalid", "signer-unknown"},
    {"weak-algorithm"},
    {"untrusted-issuer"},
    {"certificate-expired", "certificate-not-yet-valid"},
    {"certificate-revoked", "revocation-unknown"},
    {"key-usage"},
    {"policy-mismatch"},
    {"address-mismatch"},
    {"not-professional"},
    {"directory-mismatch"},
]


def test_vocabulary_is_the_documented_one():
    documented = set().union(*PRECEDENCE) | {"ok"}
    assert {str(r) for r in Reason} == documented


def test_rank_follows_documented_precedence():
    for earlier, later in zip(PRECEDENCE, PRECEDENCE[1:]):
        assert max(Reason(c).rank for c in earlier) < min(Reason(c).rank for c in later)
    assert all(Reason.OK.rank > r.rank for r in Reason if r is not Reason.OK)


def test_every_reason_has_a_description():
    assert all(r.description and r.description[0].islower() for r in Reason)


def test_verdict_json_shape():
    who = SignerIdentity("CN=x", "ab" * 32, "a@b.fr", "899700367917", "Médecin", None)
    accepted = Verdict.accept(who, "igc-sante")
    assert accepted.accepted and accepted.decision is Decision.ACCEPT
    assert accepted.as_dict() == {
        "verdict": "accept",
        "code": "ok",
        "detail": Reason.OK.description,
        "signer": {
            "subject": "CN=x",
            "fingerprint_sha256": "ab" * 32,
            "email": "a@b.fr",
            "national_id": "899700367917",
            "profession": "Médecin",
            "organisation_id": None,
        },
    }
    rejected = Verdict.reject(Reason.UNSIGNED, "not signed")
    assert not rejected.accepted
    assert rejected.as_dict()["signer"] is None and rejected.as_dict()["code"] == "unsigned"
