"""Key rotation without downtime.

A key is born ``next``: published in the JWKS but not signing, so every
replica and every client cache learns it first. After ``key_publish_lead``
it may become ``active``; the old active key becomes ``retired`` and stays
published until every token it signed has expired. ``revoked`` keys leave at
once: their tokens stop verifying everywhere.

A key's withdrawal (revoked, or retired past its publication) is logged on the
revocation log (kind ``key``), so that every replica and every local verifier
drops it, and whatever it verified, as soon as the entry arrives: a verifier
must not go on trusting a leaked key until its next key-set refresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from authsvc.domain.clock import Clock
from authsvc.domain.models import StoredKey
from authsvc.domain.policy import Policy
from authsvc.domain.ports import Store
from authsvc.domain.tokens.kek import Kek
from authsvc.domain.tokens.signing_keys import generate_key
from authsvc.errors import PreconditionFailed

log = logging.getLogger(__name__)

#: How long a key's withdrawal stays on the revocation log. Replicas reload
#: their keys from the database every ``key_reload_interval`` seconds anyway;
#: the entry only has to outlive every key set fetched before the withdrawal,
#: which a day does with room to spare (there are a handful of such entries).
KEY_EVENT_TTL = 86_400


@dataclass(frozen=True, slots=True)
class Rotation:
    retired: str
    activated: str


def _by_state(keys: list[StoredKey], state: str) -> StoredKey | None:
    return next((k for k in keys if k.state == state), None)


async def ensure_keys(store: Store, kek: Kek, policy: Policy, clock: Clock) -> list[StoredKey]:
    """An active key and a next key exist (created if missing; races are
    settled by unique indexes, so replicas starting together agree)."""
    keys = await store.signing_keys()
    if _by_state(keys, "active") is None:
        if await store.add_signing_key(generate_key(policy.signing_alg, kek, clock.now(), "active")):
            log.info("created the first signing key")
        keys = await store.signing_keys()
    if _by_state(keys, "next") is None:
        await store.add_signing_key(generate_key(policy.signing_alg, kek, clock.now(), "next"))
        keys = await store.signing_keys()
    return keys


async def rotate(
    store: Store, kek: Kek, policy: Policy, clock: Clock, *, force: bool = False, actor: str = "system"
) -> Rotation:
    """Promote the next key. Refused while the next key is younger than the
    publish lead time (verifiers might not have it yet), unless ``force``."""
    keys = await ensure_keys(store, kek, policy, clock)
    upcoming = _by_state(keys, "next")
    assert upcoming is not None
    now = clock.now()
    ready_at = upcoming.created_at + policy.key_publish_lead
    if not force and now < ready_at:
        raise PreconditionFailed(f"the next key {upcoming.kid} is published for {policy.key_publish_lead}s first")
    done = await store.promote_next_key(upcoming.kid, now)
    if done is None:
        raise PreconditionFailed("another rotation happened meanwhile")
    await ensure_keys(store, kek, policy, clock)
    await store.audit(
        "key_rotated", now, outcome="ok", actor=actor, detail=f"retired={done[0]} active={done[1]} forced={force}"
    )
    return Rotation(*done)


async def maintain(store: Store, kek: Kek, policy: Policy, clock: Clock) -> Rotation | None:
    """Run by every replica now and then: rotate when the active key is older
    than the rotation interval and the next key has been published long enough."""
    keys = await ensure_keys(store, kek, policy, clock)
    now = clock.now()
    withdrawn = await store.withdraw_retired_keys(now - policy.retire_after, now, now + KEY_EVENT_TTL)
    if withdrawn:
        log.info("retired keys left the key set: %s", ", ".join(withdrawn))
    active, upcoming = _by_state(keys, "active"), _by_state(keys, "next")
    if policy.key_rotation_interval <= 0 or active is None or upcoming is None:
        return None
    born = active.activated_at or active.created_at
    if now < born + policy.key_rotation_interval or now < upcoming.created_at + policy.key_publish_lead:
        return None
    try:
        return await rotate(store, kek, policy, clock)
    except PreconditionFailed:
        return None  # another replica rotated first


async def revoke_key(store: Store, kek: Kek, policy: Policy, clock: Clock, kid: str, *, actor: str = "") -> None:
    """Withdraw a compromised key at once. If it was signing, the next key
    takes over immediately (clients refresh their key set on the unknown kid)."""
    now = clock.now()
    replacement = generate_key(policy.signing_alg, kek, now, "active")
    if not await store.revoke_signing_key(kid, now, replacement, now + KEY_EVENT_TTL):
        raise PreconditionFailed(f"no published key {kid}")
    await ensure_keys(store, kek, policy, clock)
    await store.audit("key_revoked", now, outcome="ok", actor=actor, detail=f"kid={kid}")
