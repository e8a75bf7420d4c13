"""Transaction Tokens (draft-ietf-oauth-transaction-tokens-10): minting, and
the draft's replacement rules (section 11, "Txn-Token as a subject_token").

A Txn-Token is a short-lived JWS (``typ: txntoken+jwt``) for the trust domain
(``aud``), naming the transaction (``txn``), its subject (``sub``, and the
subject's session ``sid``, so that revoking the session ends it), its scope,
the immutable transaction context ``tctx`` (the request_details), the request
context ``rctx`` (``req_ip`` as the requester saw it, ``authn`` and ``req_wl``
as authsvc knows them) and the requesting workloads (``req_wl``). ``purp``
names the purpose in words: drafts up to -05 had it, -06 folded it into
``scope``; authsvc keeps both (a Txn-Token may carry more claims, section 6.2).

A replacement narrows or adds, nothing else: scope only shrinks; ``txn``,
``sub``, ``aud``, ``sid`` and ``purp`` stay; context keys may be added, never
changed; the lifetime never grows; the requesting workload is appended to
``req_wl``, so the chain of requesters is kept.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from authsvc.domain.audit.record import Outcome
from authsvc.domain.deps import Deps
from authsvc.domain.models import CallInfo, Client
from authsvc.domain.sessions.grants import narrow
from authsvc.errors import InvalidArgument, PermissionDenied, StoreUnavailable
from authsvc_client import MAX_TOKEN_LENGTH, AccessClaims, Reason, TokenRejected
from authsvc_client._jose import JoseFormatError, b64url_encode, json_bytes, json_object, sign
from authsvc_client._txn import TxnClaims, TxnRequirements, verify_txn_token

#: Each JSON parameter (request_context, request_details): small enough that
#: a token with both stays under MAX_TOKEN_LENGTH once base64url-encoded.
MAX_CONTEXT_BYTES = 2048
#: rctx members authsvc asserts itself; a requester may not set them.
_ASSERTED = ("authn", "req_wl")


def json_parameter(text: str, name: str) -> dict[str, Any]:
    """A JSON object parameter (the draft's request_context, request_details)."""
    if not text:
        return {}
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_CONTEXT_BYTES:
        raise InvalidArgument(f"{name} is too long")
    try:
        return json_object(data)
    except JoseFormatError:
        raise InvalidArgument(f"{name} must be a JSON object") from None


async def issue(
    deps: Deps,
    actor: Client,
    subject: AccessClaims,
    scopes: Sequence[str],
    context: dict[str, Any],
    details: dict[str, Any],
    purpose: str,
    call: CallInfo,
) -> tuple[str, int]:
    """A new transaction for the subject token's holder; gives (token, exp)."""
    now = int(deps.clock.now())
    claims: dict[str, Any] = {
        "iss": deps.policy.issuer,
        "sub": subject.sub,
        "aud": deps.policy.trust_domain,
        "iat": now,
        "exp": min(now + deps.policy.txn_token_ttl, subject.exp),
        "txn": str(uuid.uuid4()),
        "jti": secrets.token_urlsafe(16),
        "scope": " ".join(scopes),
        "req_wl": actor.id,
        "rctx": _request_context(context, subject, actor),
        "tctx": details,
    }
    if purpose:
        claims["purp"] = purpose
    if subject.sid:
        claims["sid"] = subject.sid
    token = _mint(deps, claims)
    await deps.store.audit(
        "txn_token_issued", now, outcome=Outcome.OK, actor=actor.id, subject=subject.sub, client_id=actor.id,
        session_id=subject.sid, call=call, detail=f"txn={claims['txn']} scope={claims['scope']}",
    )  # fmt: skip
    return token, claims["exp"]


async def replace(
    deps: Deps,
    actor: Client,
    token: str,
    scopes: Sequence[str],
    context: dict[str, Any],
    details: dict[str, Any],
    purpose: str,
    call: CallInfo,
) -> tuple[str, int, tuple[str, ...]]:
    """A replacement for a valid Txn-Token; gives (token, exp, scopes). Raises
    TokenRejected for a Txn-Token that is not acceptable here."""
    old = _verified(deps, token)
    now = int(deps.clock.now())
    granted = narrow(scopes, old.scope, "scope")  # only ever narrower
    if purpose and purpose != old.purp:
        raise PermissionDenied("a replacement Txn-Token keeps its purpose")
    if any(key in context for key in _ASSERTED):
        raise InvalidArgument("request_context must not set authn or req_wl: authsvc asserts them")
    claims = dict(old.raw)
    claims.update(
        iat=now,
        exp=min(now + deps.policy.txn_token_ttl, old.exp),  # never longer than the one replaced
        jti=secrets.token_urlsafe(16),
        scope=" ".join(granted),
        req_wl=",".join((*old.req_wl, actor.id)),
        rctx=_added(old.rctx, context, "request_context"),
        tctx=_added(old.tctx, details, "request_details"),
    )
    replacement = _mint(deps, claims)
    await deps.store.audit(
        "txn_token_replaced", now, outcome=Outcome.OK, actor=actor.id, subject=old.sub, client_id=actor.id,
        session_id=old.sid, call=call, detail=f"txn={old.txn} scope={claims['scope']}",
    )  # fmt: skip
    return replacement, claims["exp"], granted


def _verified(deps: Deps, token: str) -> TxnClaims:
    live = deps.live
    if not live.current:
        raise StoreUnavailable()
    now = deps.clock.now()
    old = verify_txn_token(
        token,
        keys=live.keyring.verification_keys,
        issuer=deps.policy.issuer,
        requirements=TxnRequirements(deps.policy.trust_domain),
        now=now,
        leeway=deps.policy.leeway,
        is_revoked=live.revocations.is_revoked,
    )
    if now >= old.exp:  # the draft: never replace an expired one, leeway or not
        raise TokenRejected(Reason.EXPIRED)
    return old


def _request_context(context: dict[str, Any], subject: AccessClaims, actor: Client) -> dict[str, Any]:
    if any(key in context for key in _ASSERTED):
        raise InvalidArgument("request_context must not set authn or req_wl: authsvc asserts them")
    req_ip = context.get("req_ip")
    if req_ip is not None:
        try:
            ipaddress.ip_address(req_ip)
        except ValueError:
            raise InvalidArgument("request_context req_ip must be an IP address") from None
    # authn: how the subject authenticated (RFC 8176 values, as in its amr);
    # a service client's token without amr was got with its secret.
    return {**context, "authn": " ".join(subject.amr) or "client_secret", "req_wl": actor.id}


def _added(old: Mapping[str, Any], new: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``old`` with the members of ``new`` that it lacks; a member it has may
    be repeated as it is but not changed (the draft: a replacement never
    modifies an asserted value, which could widen what it permits)."""
    for key, value in new.items():
        if key in old and old[key] != value:
            raise PermissionDenied(f"a replacement Txn-Token cannot change {name} member {key!r}")
    return {**old, **new}


def _mint(deps: Deps, claims: dict[str, Any]) -> str:
    key = deps.live.keyring.signer
    header = {"alg": key.alg, "kid": key.kid, "typ": "txntoken+jwt"}
    signing_input = b64url_encode(json_bytes(header)) + "." + b64url_encode(json_bytes(claims))
    token = f"{signing_input}.{b64url_encode(sign(key.alg, key.private, signing_input.encode('ascii')))}"
    if len(token) > MAX_TOKEN_LENGTH:  # every verifier would refuse it
        raise InvalidArgument("request_context and request_details are too large together")
    return token
