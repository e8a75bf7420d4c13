"""The Txn-Token rules (verify_txn_token), shared by authsvc's replacement and
every service's TokenVerifier: each refusal caused by the one thing changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from authsvc.domain.tokens.kek import Kek
from authsvc.domain.tokens.signing_keys import Keyring, generate_key, open_key
from authsvc_client import Reason, TokenRejected, TxnRequirements, verify_txn_token
from authsvc_client._jose import b64url_encode, json_bytes, sign
from authsvc_client._revocations import RevocationSet
from authsvc_client._verify import MAX_TOKEN_LENGTH

KEK = Kek({"k": bytes(32)}, "k")
NOW = 1_700_000_000
ISSUER, DOMAIN = "authsvc", "example.org"
REQ = TxnRequirements(DOMAIN)


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    stored = generate_key("EdDSA", KEK, NOW)
    return Keyring(open_key(stored, KEK), [stored])


def claims(**change: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER, "sub": "user-1", "aud": DOMAIN, "iat": NOW, "exp": NOW + 60, "txn": "t-1", "jti": "j-1",
        "scope": "orders.write payments.charge", "req_wl": "c_gateway,c_orders", "sid": "s-1", "purp": "buy",
        "tctx": {"item": "book", "amount": 12}, "rctx": {"req_ip": "127.0.0.1", "authn": "pwd"},
    }  # fmt: skip
    base.update(change)
    return {k: v for k, v in base.items() if v is not None}


def token(keyring: Keyring, body: dict[str, Any], **header: Any) -> str:
    key = keyring.signer
    head = {"alg": key.alg, "kid": key.kid, "typ": "txntoken+jwt", **header}
    signing_input = b64url_encode(json_bytes(head)) + "." + b64url_encode(json_bytes(body))
    return f"{signing_input}.{b64url_encode(sign(key.alg, key.private, signing_input.encode()))}"


def verify(keyring: Keyring, tok: str, req: TxnRequirements = REQ, now: float = NOW, **kw: Any) -> Any:
    return verify_txn_token(tok, keys=keyring.verification_keys, issuer=ISSUER, requirements=req, now=now, **kw)


def refused(keyring: Keyring, tok: str, **kw: Any) -> Reason:
    with pytest.raises(TokenRejected) as err:
        verify(keyring, tok, **kw)
    return err.value.reason


def test_an_acceptable_token_reads_every_claim(keyring: Keyring) -> None:
    c = verify(keyring, token(keyring, claims()), TxnRequirements(DOMAIN, ("payments.charge",)))
    assert (c.sub, c.aud, c.txn, c.jti, c.sid, c.purp) == ("user-1", (DOMAIN,), "t-1", "j-1", "s-1", "buy")
    assert c.scope == ("orders.write", "payments.charge") and c.req_wl == ("c_gateway", "c_orders")
    assert dict(c.tctx) == {"item": "book", "amount": 12} and c.rctx["authn"] == "pwd"
    with pytest.raises(TypeError):
        c.tctx["amount"] = 12_000  # read-only


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"exp": NOW - 31}, Reason.EXPIRED),  # past the 30 s leeway
        ({"iat": NOW + 31}, Reason.NOT_YET_VALID),
        ({"iss": "someone-else"}, Reason.WRONG_ISSUER),
        ({"aud": "other.example"}, Reason.WRONG_AUDIENCE),
        ({"aud": ["other.example", "third.example"]}, Reason.WRONG_AUDIENCE),
        ({"txn": None}, Reason.MALFORMED),
        ({"req_wl": None}, Reason.MALFORMED),
        ({"req_wl": "c_gateway,,c_orders"}, Reason.MALFORMED),
        ({"scope": None}, Reason.MALFORMED),
        ({"scope": ["orders.write"]}, Reason.MALFORMED),
        ({"sub": ""}, Reason.MALFORMED),
        ({"aud": []}, Reason.MALFORMED),
        ({"tctx": ["item"]}, Reason.MALFORMED),
        ({"rctx": "127.0.0.1"}, Reason.MALFORMED),
        ({"exp": True}, Reason.MALFORMED),
        ({"iat": -5}, Reason.MALFORMED),
        ({"purp": 7}, Reason.MALFORMED),
    ],
)
def test_each_rule_refuses_alone(keyring: Keyring, change: dict[str, Any], reason: Reason) -> None:
    assert refused(keyring, token(keyring, claims(**change))) is reason


def test_an_audience_list_with_the_domain_is_accepted(keyring: Keyring) -> None:
    assert verify(keyring, token(keyring, claims(aud=["other.example", DOMAIN]))).aud == ("other.example", DOMAIN)


def test_a_missing_scope_is_its_own_reason(keyring: Keyring) -> None:
    tok = token(keyring, claims(scope="orders.write"))
    assert refused(keyring, tok, req=TxnRequirements(DOMAIN, ("payments.charge",))) is Reason.MISSING_SCOPE


def test_only_a_txn_token_is_a_txn_token(keyring: Keyring) -> None:
    body = claims()
    assert refused(keyring, token(keyring, body, typ="at+jwt")) is Reason.WRONG_TYPE
    assert refused(keyring, token(keyring, body, typ="JWT")) is Reason.WRONG_TYPE
    assert verify(keyring, token(keyring, body, typ="application/TxnToken+JWT")).txn == "t-1"


def test_header_key_and_signature_are_pinned(keyring: Keyring) -> None:
    body = claims()
    assert refused(keyring, token(keyring, body, alg="ES256")) is Reason.BAD_SIGNATURE
    assert refused(keyring, token(keyring, body, kid="nobody")) is Reason.UNKNOWN_KEY
    assert refused(keyring, token(keyring, body, jku="https://evil.example/keys")) is Reason.MALFORMED
    good = token(keyring, body)
    head, payload, sig = good.split(".")
    edited = token(keyring, claims(tctx={"item": "book", "amount": 12_000})).split(".")[1]
    assert refused(keyring, f"{head}.{edited}.{sig}") is Reason.BAD_SIGNATURE  # tctx edited
    assert refused(keyring, f"{head}.{payload}.{sig}=") is Reason.MALFORMED  # not canonical base64url
    assert refused(keyring, "x" * (MAX_TOKEN_LENGTH + 1)) is Reason.MALFORMED


def test_revocation_by_session_subject_or_jti(keyring: Keyring) -> None:
    @dataclass(frozen=True)
    class Event:
        kind: str
        value: str
        revoked_at: float = NOW
        expires_at: float = NOW + 600

    for event, body in (
        (Event("session", "s-1"), claims()),
        (Event("jti", "j-1"), claims()),
        (Event("subject", "user-1"), claims(sid=None)),  # session-less: cut by subject and iat
    ):
        revocations = RevocationSet()
        revocations.add(event)
        assert refused(keyring, token(keyring, body), is_revoked=revocations.is_revoked) is Reason.REVOKED
    later = RevocationSet()
    later.add(Event("subject", "user-1", revoked_at=NOW - 1))  # cut before the token was minted
    assert verify(keyring, token(keyring, claims(sid=None)), is_revoked=later.is_revoked).sub == "user-1"


def test_a_trust_domain_is_required(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="trust domain"):
        verify(keyring, token(keyring, claims()), TxnRequirements(""))
