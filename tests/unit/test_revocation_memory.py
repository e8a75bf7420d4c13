"""Issue 4/6: the memory the revocation set holds for 100,000 revoked tokens."""

from __future__ import annotations

import gc
import secrets
import tracemalloc

from authsvc.domain.models import Revocation
from authsvc.domain.sessions.revocation_set import RevocationSet

LIMIT_BYTES = 30 * 1024 * 1024


def test_100k_revoked_tokens_fit_in_30_mb():
    now = 1_800_000_000.0
    gc.collect()
    tracemalloc.start()
    try:
        revocations = RevocationSet()
        # Fed in batches as the reconcile would, so the set owns its strings.
        for start in range(0, 100_000, 1_000):
            batch = [
                Revocation(start + i + 1, "jti", secrets.token_urlsafe(16), now, now + 330) for i in range(1_000)
            ]
            revocations.apply(batch, now)
            del batch
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(revocations) == 100_000
    print(f"\n100,000 revoked jtis hold {held / 1e6:.1f} MB")
    assert held < LIMIT_BYTES
