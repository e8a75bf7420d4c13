"""Token exchange (RFC 8693): a service trades a token it received for one it
may pass on, narrower and saying who passed it.

The caller (the actor) authenticates as a service client, exactly as Issue's
client credential does. Its exchange policy names the audiences it may
exchange for (none by default). The new token is the subject's: same ``sub``,
same session (``sid``, so revoking the session ends every token exchanged
from it), scopes at most (the subject token's) and (the actor's own), a
lifetime no longer than the subject token's remaining one, and ``act`` naming
the actor, nested over any earlier actor (section 4.1). A Transaction Token
(``requested_token_type`` txn_token) is issued by :mod:`.txn_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from authsvc.domain import validate
from authsvc.domain.audit.record import Outcome
from authsvc.domain.deps import Deps
from authsvc.domain.identity.login import authenticate_client
from authsvc.domain.models import CallInfo, Client
from authsvc.domain.sessions.grants import access_token, narrow
from authsvc.domain.tokens import txn_tokens
from authsvc.domain.tokens.mint import Grant
from authsvc.errors import InvalidArgument, PermissionDenied
from authsvc_client import AccessClaims, Actor, TokenRejected
from authsvc_client._txn import TXN_TOKEN_TYPE

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - a URN
#: Actors one token may pass through. Each hop adds an ``act`` level, and a
#: chain this long is a loop or a design error, not a call path.
MAX_EXCHANGE_DEPTH = 8
#: The one message for any subject token that cannot be exchanged (expired,
#: revoked, forged, bound to another certificate): RFC 8693 section 2.2.2's
#: invalid_request, with no detail about which rule failed.
INVALID_SUBJECT = "invalid subject_token"


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    """RFC 8693 section 2.1's parameters, the actor's credential beside them."""

    client_id: str
    client_secret: str
    subject_token: str
    subject_token_type: str = ""
    audiences: Sequence[str] = ()
    scopes: Sequence[str] = ()
    requested_token_type: str = ""
    #: Txn-Tokens only: the draft's request_context, request_details (JSON
    #: object texts) and the transaction's purpose.
    request_context: str = ""
    request_details: str = ""
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class Exchanged:
    """RFC 8693 section 2.2.1's answer."""

    token: str
    issued_token_type: str
    token_type: str  # "Bearer", or "N_A" for a Txn-Token
    expires_in: int
    scopes: tuple[str, ...]


async def exchange(deps: Deps, request: ExchangeRequest, call: CallInfo) -> Exchanged:
    validate.text(request.subject_token, "subject_token", validate.MAX_TOKEN)
    audiences = validate.names(request.audiences, "audience")
    scopes = validate.names(request.scopes, "scope")
    actor = await authenticate_client(deps, request.client_id, request.client_secret, call)
    if request.requested_token_type == TXN_TOKEN_TYPE:
        return await _transaction_token(deps, actor, request, audiences, scopes, call)
    if request.requested_token_type not in ("", ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        raise InvalidArgument("unsupported requested_token_type")
    if request.subject_token_type not in ("", ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        raise InvalidArgument("unsupported subject_token_type")
    if not audiences:
        raise InvalidArgument("audience is required")
    allowed_audiences(deps, actor, audiences)
    subject = subject_claims(deps, request.subject_token, call)
    granted = delegable(subject, actor, scopes)
    depth = subject.act.depth if subject.act is not None else 0
    if depth >= MAX_EXCHANGE_DEPTH:
        raise PermissionDenied("delegation chain too long")
    now = deps.clock.now()
    token, _, exp = access_token(
        deps,
        Grant(
            subject=subject.sub,
            audiences=audiences,
            scopes=granted,
            client_id=actor.id,  # RFC 8693 section 4.3: the client that asked for this token
            auth_time=subject.auth_time,
            amr=subject.amr,
            acr=subject.acr,
            session_id=subject.sid,
            # The actor's certificate, when it came over mTLS: a token it
            # leaks is then of no use without its private key (RFC 8705).
            cert_thumbprint=call.cert_thumbprint if deps.policy.bind_to_cert else "",
            act=act_claim(actor.id, subject.act),
            not_after=subject.exp,
        ),
    )
    await deps.store.audit(
        "token_exchanged", now, outcome=Outcome.OK, actor=actor.id, subject=subject.sub, client_id=actor.id,
        session_id=subject.sid, call=call, detail=f"aud={','.join(audiences)} depth={depth + 1}",
    )  # fmt: skip
    return Exchanged(token, ACCESS_TOKEN_TYPE, "Bearer", exp - int(now), granted)


async def _transaction_token(
    deps: Deps, actor: Client, request: ExchangeRequest, audiences: Sequence[str], scopes: Sequence[str],
    call: CallInfo,
) -> Exchanged:
    """The draft's Txn-Token Request (section 7.1): for the trust domain
    only, with the same policy and subject checks as a delegated token; a
    Txn-Token as the subject asks for its replacement."""
    if tuple(audiences) != (deps.policy.trust_domain,):
        raise InvalidArgument("a Txn-Token's audience is the trust domain, alone")
    # The trust domain may be spelled like authsvc's own audience (both default
    # to "authsvc"): no matter, a Txn-Token is never taken for an access token.
    in_policy(actor, audiences)
    if not scopes:
        raise InvalidArgument("scope is required for a Txn-Token")
    context = txn_tokens.json_parameter(request.request_context, "request_context")
    details = txn_tokens.json_parameter(request.request_details, "request_details")
    if request.purpose:
        validate.names([request.purpose], "purpose")
    if request.subject_token_type == TXN_TOKEN_TYPE:
        try:
            token, exp, granted = await txn_tokens.replace(
                deps, actor, request.subject_token, scopes, context, details, request.purpose, call
            )
        except TokenRejected:
            raise InvalidArgument(INVALID_SUBJECT) from None
    elif request.subject_token_type in ("", ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        subject = subject_claims(deps, request.subject_token, call)
        granted = delegable(subject, actor, scopes)
        token, exp = await txn_tokens.issue(deps, actor, subject, granted, context, details, request.purpose, call)
    else:
        raise InvalidArgument("unsupported subject_token_type")
    return Exchanged(token, TXN_TOKEN_TYPE, "N_A", exp - int(deps.clock.now()), granted)


def allowed_audiences(deps: Deps, actor: Client, audiences: Sequence[str]) -> None:
    """Every audience must be in the actor's exchange policy, and none may be
    authsvc's own: a delegated token must never work at the self-service
    calls (enrol MFA, revoke) as the user (a confused deputy)."""
    if deps.policy.self_audience in audiences:
        raise PermissionDenied(f"audience {deps.policy.self_audience} cannot be exchanged for")
    in_policy(actor, audiences)


def in_policy(actor: Client, audiences: Sequence[str]) -> None:
    if not set(audiences) <= set(actor.exchange_audiences):
        raise PermissionDenied("audience not allowed for exchange")


def subject_claims(deps: Deps, token: str, call: CallInfo) -> AccessClaims:
    """The subject token's claims, verified by every rule of Verify but the
    audience (authsvc is none of its audiences)."""
    try:
        return deps.live.verify_subject_token(token, call.cert_thumbprint)
    except TokenRejected:
        raise InvalidArgument(INVALID_SUBJECT) from None


def delegable(subject: AccessClaims, actor: Client, requested: Sequence[str]) -> tuple[str, ...]:
    """(subject token's scopes) and (the actor's scopes), or the part asked
    for; asking for more is refused, never trimmed."""
    allowed = [s for s in subject.scope if s in actor.scopes]
    granted = narrow(requested, allowed, "scope")
    if not granted:
        raise PermissionDenied("no scope to delegate")
    return granted


def act_claim(actor_id: str, previous: Actor | None) -> dict[str, Any]:
    """RFC 8693 section 4.1: the current actor outermost, the earlier ones nested."""
    claim: dict[str, Any] = {"sub": actor_id}
    if previous is not None:
        claim["act"] = act_claim(previous.sub, previous.act)
    return claim
