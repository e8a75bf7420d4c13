"""Users, as an admin manages them. The rules themselves are in
identity/accounts.py, shared with the CLI."""

from __future__ import annotations

from collections.abc import Sequence

from authsvc.domain import validate
from authsvc.domain.admin import paging
from authsvc.domain.admin.authz import authorize
from authsvc.domain.deps import Deps
from authsvc.domain.identity import accounts
from authsvc.domain.models import CallInfo, User
from authsvc.errors import InvalidArgument, NotFound


async def _existing(deps: Deps, user_id: str) -> User:
    user = await deps.store.user_by_id(user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def create_user(
    deps: Deps,
    bearer: str | None,
    call: CallInfo,
    username: str,
    password: str,
    scopes: Sequence[str],
    audiences: Sequence[str],
) -> User:
    validate.text(username, "username")
    actor = await authorize(deps, bearer, call, "CreateUser", username)
    new_id = await accounts.create_user(
        deps.store, deps.passwords, deps.clock, username, password, scopes, audiences, actor=actor.id, call=call
    )
    return await _existing(deps, new_id)


async def get_user(deps: Deps, bearer: str | None, call: CallInfo, user_id: str, username: str) -> User:
    if user_id:
        user_id = accounts.user_id(user_id)
    elif username:
        validate.text(username, "username")
    else:
        raise InvalidArgument("id or username is required")
    await authorize(deps, bearer, call, "GetUser", user_id or username)
    user = await (deps.store.user_by_id(user_id) if user_id else deps.store.user_by_name(username))
    if user is None:
        raise NotFound("no such user")
    return user


async def list_users(
    deps: Deps, bearer: str | None, call: CallInfo, page_size: int, page_token: str
) -> paging.Page[User]:
    limit, after = paging.size(page_size), paging.decode(page_token)
    await authorize(deps, bearer, call, "ListUsers")
    rows = await deps.store.users_after(after, limit + 1)
    return paging.page(rows, limit, rows[limit - 1].username if len(rows) > limit else "")


async def set_disabled(deps: Deps, bearer: str | None, call: CallInfo, user_id: str, disabled: bool) -> int:
    """Disable: every session revoked at once, login and refresh refused."""
    user_id = accounts.user_id(user_id)
    actor = await authorize(deps, bearer, call, "DisableUser" if disabled else "EnableUser", user_id)
    count = await accounts.set_disabled(deps.store, deps.clock, deps.policy, user_id, disabled, actor.id, call)
    await deps.live.sync_revocations(deps.store)  # this replica rejects the tokens at once
    return count


async def delete_user(deps: Deps, bearer: str | None, call: CallInfo, user_id: str) -> int:
    user_id = accounts.user_id(user_id)
    actor = await authorize(deps, bearer, call, "DeleteUser", user_id)
    count = await accounts.delete_user(deps.store, deps.clock, deps.policy, user_id, actor.id, call)
    await deps.live.sync_revocations(deps.store)
    return count


async def set_password(deps: Deps, bearer: str | None, call: CallInfo, user_id: str, password: str) -> int:
    user_id = accounts.user_id(user_id)
    validate.text(password, "password", validate.MAX_SECRET)
    actor = await authorize(deps, bearer, call, "SetPassword", user_id)
    await _existing(deps, user_id)
    count = await accounts.change_password(
        deps.store, deps.passwords, deps.clock, deps.policy, user_id, password, actor=actor.id, call=call
    )
    await deps.live.sync_revocations(deps.store)
    return count


async def reset_mfa(deps: Deps, bearer: str | None, call: CallInfo, user_id: str) -> int:
    user_id = accounts.user_id(user_id)
    actor = await authorize(deps, bearer, call, "ResetMFA", user_id)
    await _existing(deps, user_id)
    count = await accounts.reset_mfa(deps.store, deps.clock, deps.policy, user_id, actor=actor.id, call=call)
    await deps.live.sync_revocations(deps.store)
    return count
