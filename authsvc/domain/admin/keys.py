"""Signing keys, as an admin manages them (tokens/key_rotation.py)."""

from __future__ import annotations

from authsvc.domain import validate
from authsvc.domain.admin.authz import authorize
from authsvc.domain.deps import Deps
from authsvc.domain.models import CallInfo, StoredKey
from authsvc.domain.tokens import key_rotation
from authsvc.errors import NotFound


async def list_keys(deps: Deps, bearer: str | None, call: CallInfo) -> list[StoredKey]:
    await authorize(deps, bearer, call, "ListKeys")
    return await deps.store.signing_keys()


async def rotate_key(deps: Deps, bearer: str | None, call: CallInfo, force: bool) -> key_rotation.Rotation:
    await authorize(deps, bearer, call, "RotateKey")
    done = await key_rotation.rotate(deps.store, deps.kek, deps.policy, deps.clock, force=force)
    await deps.live.reload_keys(deps.store, deps.kek)  # this replica signs with the new key at once
    return done


async def revoke_key(deps: Deps, bearer: str | None, call: CallInfo, kid: str) -> None:
    validate.text(kid, "kid")
    await authorize(deps, bearer, call, "RevokeKey", kid)
    if not any(k.kid == kid and k.state != "revoked" for k in await deps.store.signing_keys()):
        raise NotFound("no such key")
    await key_rotation.revoke_key(deps.store, deps.kek, deps.policy, deps.clock, kid)
    await deps.live.reload_keys(deps.store, deps.kek)  # its tokens stop verifying here at once
