"""Delegated tokens (RFC 8693 section 4.1): the `act` chain as the shared
rules read it, and Requirements.max_delegation_depth."""

from __future__ import annotations

from typing import Any

import pytest

from authsvc.domain.models import StoredKey
from authsvc.domain.tokens.exchange import act_claim
from authsvc.domain.tokens.kek import Kek
from authsvc.domain.tokens.mint import Grant, mint_access_token
from authsvc.domain.tokens.signing_keys import Keyring, generate_key, open_key
from authsvc_client import Actor, Reason, Requirements, TokenRejected, verify_access_token
from authsvc_client._jose import b64url_encode, json_bytes, sign
from authsvc_client._verify import MAX_ACT_DEPTH

KEK = Kek({"k": bytes(32)}, "k")
NOW = 1_700_000_000.0
ISSUER = "authsvc"


@pytest.fixture(scope="module")
def stored() -> StoredKey:
    return generate_key("EdDSA", KEK, NOW)


@pytest.fixture(scope="module")
def keyring(stored: StoredKey) -> Keyring:
    return Keyring(open_key(stored, KEK), [stored])


def grant(act: dict[str, Any] | None) -> Grant:
    return Grant(
        subject="user-1", audiences=("payments",), scopes=("pay",), client_id="c_orders", auth_time=NOW,
        amr=("pwd",), acr="aal1", session_id="s-1", act=act, not_after=int(NOW) + 30,
    )  # fmt: skip


def verify(keyring: Keyring, token: str, depth: int | None = None) -> Any:
    return verify_access_token(
        token, keys=keyring.verification_keys, issuer=ISSUER,
        requirements=Requirements("payments", max_delegation_depth=depth), now=NOW,
    )  # fmt: skip


def signed(keyring: Keyring, claims: dict[str, Any]) -> str:
    key = keyring.signer
    head = b64url_encode(json_bytes({"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}))
    body = b64url_encode(json_bytes(claims))
    return f"{head}.{body}.{b64url_encode(sign(key.alg, key.private, f'{head}.{body}'.encode()))}"


def test_act_nests_the_latest_actor_outermost(keyring: Keyring) -> None:
    chain = act_claim("c_orders", Actor("c_gateway"))
    assert chain == {"sub": "c_orders", "act": {"sub": "c_gateway"}}
    token, _, exp = mint_access_token(grant(chain), key=keyring.signer, issuer=ISSUER, now=NOW, ttl=300)
    assert exp == int(NOW) + 30  # capped by the subject token, not the ttl
    claims = verify(keyring, token)
    assert claims.act == Actor("c_orders", Actor("c_gateway"))
    assert claims.act.depth == 2


@pytest.mark.parametrize(("depth", "accepted"), [(None, True), (3, True), (2, True), (1, False), (0, False)])
def test_max_delegation_depth(keyring: Keyring, depth: int | None, accepted: bool) -> None:
    token, _, _ = mint_access_token(
        grant(act_claim("c_orders", Actor("c_gateway"))), key=keyring.signer, issuer=ISSUER, now=NOW, ttl=300
    )
    if accepted:
        assert verify(keyring, token, depth).act is not None
    else:
        with pytest.raises(TokenRejected) as err:
            verify(keyring, token, depth)
        assert err.value.reason is Reason.DELEGATION_TOO_DEEP


def test_an_undelegated_token_passes_depth_zero(keyring: Keyring) -> None:
    token, _, _ = mint_access_token(grant(None), key=keyring.signer, issuer=ISSUER, now=NOW, ttl=300)
    assert verify(keyring, token, 0).act is None


def _claims(act: Any) -> dict[str, Any]:
    return {
        "iss": ISSUER, "sub": "u", "aud": "payments", "exp": int(NOW) + 60, "iat": int(NOW), "jti": "j",
        "scope": "pay", "act": act,
    }  # fmt: skip


def _deep(levels: int) -> dict[str, Any]:
    act: dict[str, Any] = {"sub": "a0"}
    for i in range(1, levels):
        act = {"sub": f"a{i}", "act": act}
    return act


@pytest.mark.parametrize(
    "act",
    [
        "c_gateway",  # a string, not an object
        ["c_gateway"],
        {},  # no sub
        {"sub": ""},
        {"sub": 7},
        {"sub": "c_orders", "act": "c_gateway"},
        {"sub": "c_orders", "act": {"client_id": "x"}},
        _deep(MAX_ACT_DEPTH + 1),
    ],
)
def test_malformed_act_is_refused(keyring: Keyring, act: Any) -> None:
    with pytest.raises(TokenRejected) as err:
        verify(keyring, signed(keyring, _claims(act)))
    assert err.value.reason is Reason.MALFORMED


def test_act_may_carry_other_claims_and_the_deepest_allowed_chain(keyring: Keyring) -> None:
    claims = verify(keyring, signed(keyring, _claims({"sub": "c_orders", "iss": "elsewhere"})))
    assert claims.act == Actor("c_orders")
    assert verify(keyring, signed(keyring, _claims(_deep(MAX_ACT_DEPTH)))).act.depth == MAX_ACT_DEPTH
