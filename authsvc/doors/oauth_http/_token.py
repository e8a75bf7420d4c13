"""``POST /oauth2/token`` (RFC 6749 sections 4.4 and 6): one small handler
per grant type, found in :data:`GRANTS` by the request's ``grant_type``.

A new grant is one more entry (see :func:`grant`); the metadata document's
``grant_types_supported`` is read from the same table, so it names exactly
what is served."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from authsvc.domain.deps import Deps
from authsvc.domain.identity import login
from authsvc.domain.models import CallInfo, Client, TokenPair
from authsvc.domain.sessions import refresh
from authsvc.domain.tokens import exchange
from authsvc.doors.http_status import bad_request
from authsvc.errors import InvalidCredentials

from ._request import ClientAuth, Form, HttpFailure, invalid_client


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One token request, parsed: what a grant handler works from."""

    deps: Deps
    form: Form
    client: ClientAuth
    call: CallInfo


#: A grant handler: the token request -> the JSON body of the answer.
Grant = Callable[[TokenRequest], Awaitable[dict[str, Any]]]
GRANTS: dict[str, Grant] = {}


def grant(name: str) -> Callable[[Grant], Grant]:
    """Register a handler for ``grant_type=name``."""

    def register(handler: Grant) -> Grant:
        GRANTS[name] = handler
        return handler

    return register


def token_answer(pair: TokenPair) -> dict[str, Any]:
    """RFC 6749 section 5.1."""
    body: dict[str, Any] = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "scope": " ".join(pair.scopes),
    }
    if pair.refresh_token:
        body["refresh_token"] = pair.refresh_token
    return body


async def authenticated_client(deps: Deps, auth: ClientAuth, call: CallInfo) -> Client:
    """The client that made the request, which must have proved itself."""
    if not auth.client_id:
        raise invalid_client("client authentication is required")
    try:
        return await login.authenticate_client(deps, auth.client_id, auth.secret, call)
    except InvalidCredentials:
        raise invalid_client() from None


@grant("client_credentials")
async def _client_credentials(req: TokenRequest) -> dict[str, Any]:
    """RFC 6749 section 4.4: the Issue RPC's client credential."""
    if not req.client.client_id:
        raise invalid_client("client authentication is required")
    try:
        pair = await login.issue_with_client(
            req.deps, req.client.client_id, req.client.secret, req.form.audiences(), req.form.scopes(), req.call
        )
    except InvalidCredentials:  # here, only the client's own proof can fail
        raise invalid_client() from None
    return token_answer(pair)


@grant("refresh_token")
async def _refresh_token(req: TokenRequest) -> dict[str, Any]:
    """RFC 6749 section 6: the Refresh RPC. Refresh tokens belong to user
    sessions, not to clients: a client that sends credentials must prove
    them, but none is needed (a public client, RFC 6749 section 2.1)."""
    if req.client.method != "none":
        await authenticated_client(req.deps, req.client, req.call)
    if req.form.audiences():
        raise HttpFailure(bad_request("a session's audience is fixed at login", "invalid_target"))
    token = req.form.one("refresh_token")
    if not token:
        raise HttpFailure(bad_request("refresh_token is required"))
    return token_answer(await refresh.refresh(req.deps, token, req.form.scopes(), req.call))


@grant("urn:ietf:params:oauth:grant-type:token-exchange")
async def _token_exchange(req: TokenRequest) -> dict[str, Any]:
    """RFC 8693 section 2: the ExchangeToken RPC. The authenticated client is
    the actor (no actor_token); a Txn-Token is asked for with
    requested_token_type urn:ietf:params:oauth:token-type:txn_token and the
    draft's request_context and request_details (JSON objects)."""
    if not req.client.client_id:
        raise invalid_client("client authentication is required")
    form = req.form
    if "actor_token" in form:
        raise HttpFailure(bad_request("actor_token is not supported: the authenticated client is the actor"))
    if not form.one("subject_token") or not form.one("subject_token_type"):
        raise HttpFailure(bad_request("subject_token and subject_token_type are required"))
    asked = exchange.ExchangeRequest(
        client_id=req.client.client_id, client_secret=req.client.secret, subject_token=form.one("subject_token"),
        subject_token_type=form.one("subject_token_type"), audiences=form.audiences(), scopes=form.scopes(),
        requested_token_type=form.one("requested_token_type"), request_context=form.one("request_context"),
        request_details=form.one("request_details"), purpose=form.one("purpose"),
    )  # fmt: skip
    try:
        done = await exchange.exchange(req.deps, asked, req.call)
    except InvalidCredentials:  # here, only the actor's own proof can fail
        raise invalid_client() from None
    return {
        "access_token": done.token, "issued_token_type": done.issued_token_type, "token_type": done.token_type,
        "expires_in": done.expires_in, "scope": " ".join(done.scopes),
    }  # fmt: skip
