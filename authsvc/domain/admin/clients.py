"""Service clients, as an admin manages them (rules in identity/clients.py,
shared with the CLI)."""

from __future__ import annotations

from collections.abc import Sequence

from authsvc.domain import validate
from authsvc.domain.admin import paging
from authsvc.domain.admin.authz import authorize
from authsvc.domain.deps import Deps
from authsvc.domain.identity import clients
from authsvc.domain.models import CallInfo, Client
from authsvc.errors import NotFound


async def _existing(deps: Deps, client_id: str) -> Client:
    client = await deps.store.client_by_id(client_id)
    if client is None:
        raise NotFound("no such client")
    return client


async def create_client(
    deps: Deps,
    bearer: str | None,
    call: CallInfo,
    name: str,
    scopes: Sequence[str],
    audiences: Sequence[str],
    tls_san_uri: str,
    tls_thumbprint: str,
) -> tuple[Client, str]:
    """The new client and its secret (given once; "" for a certificate client)."""
    validate.text(name, "name")
    actor = await authorize(deps, bearer, call, "CreateClient", name)
    done = await clients.register(
        deps.store, deps.clock, name, scopes, audiences,
        tls_san_uri=tls_san_uri, tls_thumbprint=tls_thumbprint, actor=actor.id, call=call,
    )  # fmt: skip
    return await _existing(deps, done.client_id), done.secret


async def list_clients(
    deps: Deps, bearer: str | None, call: CallInfo, page_size: int, page_token: str
) -> paging.Page[Client]:
    limit, after = paging.size(page_size), paging.decode(page_token)
    await authorize(deps, bearer, call, "ListClients")
    rows = await deps.store.clients_after(after, limit + 1)
    return paging.page(rows, limit, rows[limit - 1].name if len(rows) > limit else "")


async def set_disabled(deps: Deps, bearer: str | None, call: CallInfo, client_id: str, disabled: bool) -> Client:
    validate.text(client_id, "client_id")
    actor = await authorize(deps, bearer, call, "DisableClient" if disabled else "EnableClient", client_id)
    await clients.set_disabled(deps.store, deps.clock, deps.policy, client_id, disabled, actor.id, call)
    await deps.live.sync_revocations(deps.store)  # its tokens stop here at once
    return await _existing(deps, client_id)


async def rotate_secret(
    deps: Deps, bearer: str | None, call: CallInfo, client_id: str, overlap: int | None
) -> tuple[Client, str]:
    validate.text(client_id, "client_id")
    actor = await authorize(deps, bearer, call, "RotateClientSecret", client_id)
    secret = await clients.rotate_secret(deps.store, deps.clock, deps.policy, client_id, overlap, actor.id, call)
    return await _existing(deps, client_id), secret


async def delete_client(deps: Deps, bearer: str | None, call: CallInfo, client_id: str) -> None:
    validate.text(client_id, "client_id")
    actor = await authorize(deps, bearer, call, "DeleteClient", client_id)
    await clients.delete(deps.store, deps.clock, deps.policy, client_id, actor.id, call)
    await deps.live.sync_revocations(deps.store)
