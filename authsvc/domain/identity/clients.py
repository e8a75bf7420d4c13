"""Service clients: registering, disabling, rotating the secret, deleting.
The rules the CLI and the AdminService share; ``actor`` is for the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from authsvc.domain import validate
from authsvc.domain.audit.record import Outcome
from authsvc.domain.clock import Clock
from authsvc.domain.identity import credentials
from authsvc.domain.models import CallInfo
from authsvc.domain.policy import Policy
from authsvc.domain.ports import Store
from authsvc.errors import InvalidArgument, NotFound, PreconditionFailed

#: The longest overlap an operator may ask for when rotating a secret.
MAX_OVERLAP = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Registered:
    client_id: str
    secret: str  # "" for a certificate-authenticated client


async def register(
    store: Store,
    clock: Clock,
    name: str,
    scopes: Sequence[str],
    audiences: Sequence[str],
    *,
    tls_san_uri: str = "",
    tls_thumbprint: str = "",
    actor: str = "",
    call: CallInfo | None = None,
    exchange_audiences: Sequence[str] = (),
) -> Registered:
    """A new client. With a certificate (RFC 8705 section 2) it has no secret
    at all; else its secret is given here, once, and stored only as a hash."""
    validate.text(name, "name")
    scopes, audiences = validate.names(scopes, "scope"), validate.names(audiences, "audience")
    exchange_audiences = validate.names(exchange_audiences, "exchange audience")
    if not audiences:
        raise InvalidArgument("a client needs at least one audience")
    if tls_san_uri and tls_thumbprint:
        raise InvalidArgument("give tls_san_uri or tls_thumbprint, not both")
    for value, field in ((tls_san_uri, "tls_san_uri"), (tls_thumbprint, "tls_thumbprint")):
        if value:
            validate.text(value, field, 1024)
    client_id = credentials.new_client_id()
    secret = "" if tls_san_uri or tls_thumbprint else credentials.new_client_secret()
    now = clock.now()
    await store.create_client(
        client_id, name, credentials.digest(secret) if secret else b"", scopes, audiences, now,
        tls_san_uri=tls_san_uri or None, tls_thumbprint=tls_thumbprint or None, exchange_audiences=exchange_audiences,
    )  # fmt: skip
    await store.audit(
        "client_created", now, subject=client_id, outcome=Outcome.OK, actor=actor, call=call, detail=f"name={name}"
    )
    return Registered(client_id, secret)


async def set_exchange_audiences(
    store: Store, clock: Clock, client: str, audiences: Sequence[str], actor: str, call: CallInfo | None = None
) -> None:
    """Replace the exchange policy of the client with this id or name: the
    audiences it may exchange tokens it received for (RFC 8693); none at all
    with an empty list."""
    audiences = validate.names(audiences, "exchange audience")
    if not await store.set_exchange_audiences(client, audiences):
        raise NotFound("no such client")
    await store.audit(
        "client_exchange_policy_set", clock.now(), subject=client, outcome=Outcome.OK, actor=actor, call=call,
        detail=f"exchange_audiences={','.join(audiences) or '-'}",
    )  # fmt: skip


async def set_disabled(
    store: Store, clock: Clock, policy: Policy, client_id: str, disabled: bool, actor: str, call: CallInfo | None = None
) -> None:
    """A disabled client cannot log in, and its live tokens are revoked."""
    now = clock.now()
    if not await store.set_client_disabled(client_id, disabled, now, now + policy.revocation_ttl):
        raise NotFound("no such client")
    event = "client_disabled" if disabled else "client_enabled"
    await store.audit(event, now, subject=client_id, outcome=Outcome.OK, actor=actor, call=call)


async def rotate_secret(
    store: Store,
    clock: Clock,
    policy: Policy,
    client_id: str,
    overlap: int | None,
    actor: str,
    call: CallInfo | None = None,
) -> str:
    """A new secret, given once. The old one keeps working for ``overlap``
    seconds (None: the configured default; 0: it stops at once), so that the
    client can be redeployed with the new one without an outage."""
    if overlap is None:
        overlap = policy.client_secret_overlap
    if not 0 <= overlap <= MAX_OVERLAP:
        raise InvalidArgument(f"overlap_seconds must be between 0 and {MAX_OVERLAP}")
    client = await store.client_by_id(client_id)
    if client is None:
        raise NotFound("no such client")
    if client.tls_san_uri or client.tls_thumbprint:
        raise PreconditionFailed("this client authenticates with its certificate and has no secret")
    secret = credentials.new_client_secret()
    now = clock.now()
    if not await store.rotate_client_secret(client_id, credentials.digest(secret), now + overlap if overlap else None):
        raise NotFound("no such client")
    await store.audit(
        "client_secret_rotated", now, subject=client_id, outcome=Outcome.OK, actor=actor, call=call,
        detail=f"overlap={overlap}",
    )  # fmt: skip
    return secret


async def delete(
    store: Store, clock: Clock, policy: Policy, client_id: str, actor: str, call: CallInfo | None = None
) -> None:
    now = clock.now()
    if not await store.delete_client(client_id, now, now + policy.revocation_ttl):
        raise NotFound("no such client")
    await store.audit("client_deleted", now, subject=client_id, outcome=Outcome.OK, actor=actor, call=call)
