"""Rotating the key-encryption key: every sealed secret re-encrypted at once."""

from __future__ import annotations

from authsvc.domain.ports import Store
from authsvc.domain.tokens.kek import Kek, aad


async def reseal_all(store: Store, kek: Kek, *, now: float = 0.0, actor: str = "") -> dict[str, int]:
    """Open each secret with whichever configured KEK sealed it and seal it
    again under the current one, in one transaction. Afterwards the old KEK
    can be dropped from AUTHSVC_KEK. Gives the number of secrets per kind."""

    def reseal(kind: str, row_id: str, kek_id: str, sealed: bytes) -> tuple[str, bytes]:
        bound = aad(kind, row_id)
        return kek.seal(kek.open(kek_id, sealed, bound), bound)

    counts = await store.reseal_all(reseal)
    done = " ".join(f"{kind}={n}" for kind, n in counts.items())
    await store.audit("kek_rotated", now, outcome="ok", actor=actor, detail=f"current={kek.current} {done}")
    return counts
