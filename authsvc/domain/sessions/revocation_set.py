"""The in-memory revocation set that Verify consults instead of the database.

It is fed from the append-only revocation log by cursor. Sequence numbers are
handed out at insert but become visible at commit, so a later number can be
seen before an earlier one: a reader that only moved its cursor forward would
skip the earlier one for ever. The set therefore remembers the holes below its
cursor and asks for them again until they fill or grow older than any
transaction may live (a rolled-back insert leaves a hole that never fills).
"""

from __future__ import annotations

from collections.abc import Iterable

from authsvc.domain.models import Revocation
from authsvc_client._revocations import RevocationSet as Rules

#: A hole in the sequence older than this is a rolled-back insert, not a slow one.
GAP_TIMEOUT_SECONDS = 60.0
#: On the first read of the log, holes are tracked only this far below the
#: first number seen: further down are entries pruned long ago (a replica
#: starting on an old log would otherwise track millions), not transactions
#: still in flight, which are few and recent.
STARTUP_GAP_SPAN = 1_000
#: Afterwards every hole is tracked (one transaction may write thousands of
#: rows, say revoking a subject with many sessions), up to this many.
MAX_GAP_SPAN = 1_000_000
#: Expired entries are swept at most this often (seconds): a sweep touches
#: every entry, and Revoke syncs on every call.
PRUNE_INTERVAL = 10.0


class RevocationSet:
    """The client package's revocation rules (one implementation for Verify
    and for every service's local verifier), plus the cursor and its holes."""

    def __init__(self) -> None:
        self._rules = Rules()
        #: Verify's per-call check: the rules' own method, one call deep.
        self.is_revoked = self._rules.is_revoked
        self.cursor = 0
        self._gaps: dict[int, float] = {}  # missing seq -> when first missed
        self._pruned_at = float("-inf")

    def __len__(self) -> int:
        return len(self._rules)

    @property
    def withdrawn_keys(self) -> frozenset[str]:
        return self._rules.withdrawn_keys

    @property
    def gaps(self) -> list[int]:
        return sorted(self._gaps)

    def apply(self, entries: Iterable[Revocation], now: float) -> list[Revocation]:
        """Add entries (in any order, repeats allowed); give the ones that were new."""
        fresh: list[Revocation] = []
        for entry in sorted(entries, key=lambda e: e.seq):
            if entry.seq in self._gaps:
                del self._gaps[entry.seq]
            elif entry.seq <= self.cursor:
                continue  # seen already
            else:
                span = STARTUP_GAP_SPAN if self.cursor == 0 else MAX_GAP_SPAN
                for missing in range(max(self.cursor + 1, entry.seq - span), entry.seq):
                    self._gaps[missing] = now
                self.cursor = entry.seq
            fresh.append(entry)
            self._rules.add(entry)
        return fresh

    def prune(self, now: float) -> None:
        """Forget what no live token can match, and holes too old to fill."""
        if now - self._pruned_at >= PRUNE_INTERVAL:
            self._rules.prune(now)
            self._pruned_at = now
        self._gaps = {k: v for k, v in self._gaps.items() if now - v < GAP_TIMEOUT_SECONDS}

