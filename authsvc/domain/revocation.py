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

from authsvc_client import AccessClaims

from .models import Revocation

#: A hole in the sequence older than this is a rolled-back insert, not a slow one.
GAP_TIMEOUT_SECONDS = 60.0


class RevocationSet:
    def __init__(self) -> None:
        self._jtis: dict[str, float] = {}
        self._sessions: dict[str, float] = {}
        self._subjects: dict[str, tuple[float, float]] = {}  # revoked_at, expires_at
        self.cursor = 0
        self._gaps: dict[int, float] = {}  # missing seq -> when first missed

    def __len__(self) -> int:
        return len(self._jtis) + len(self._sessions) + len(self._subjects)

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
                for missing in range(self.cursor + 1, entry.seq):
                    self._gaps[missing] = now
                self.cursor = entry.seq
            fresh.append(entry)
            self._add(entry)
        return fresh

    def _add(self, entry: Revocation) -> None:
        if entry.kind == "jti":
            self._jtis[entry.value] = max(entry.expires_at, self._jtis.get(entry.value, 0.0))
        elif entry.kind == "session":
            self._sessions[entry.value] = max(entry.expires_at, self._sessions.get(entry.value, 0.0))
        elif entry.kind == "subject":
            old_at, old_exp = self._subjects.get(entry.value, (0.0, 0.0))
            self._subjects[entry.value] = (max(old_at, entry.revoked_at), max(old_exp, entry.expires_at))

    def prune(self, now: float) -> None:
        """Forget what no live token can match, and holes too old to fill."""
        self._jtis = {k: v for k, v in self._jtis.items() if v > now}
        self._sessions = {k: v for k, v in self._sessions.items() if v > now}
        self._subjects = {k: v for k, v in self._subjects.items() if v[1] > now}
        self._gaps = {k: v for k, v in self._gaps.items() if now - v < GAP_TIMEOUT_SECONDS}

    def is_revoked(self, claims: AccessClaims) -> bool:
        if claims.jti in self._jtis:
            return True
        if claims.sid:
            # Tokens of a user session are cut by their session; revoking a
            # subject revokes each of its sessions by id.
            return claims.sid in self._sessions
        # Session-less tokens (service clients) are cut by subject and time.
        # iat has one-second precision, so a token minted in the second of the
        # revocation is revoked too: the safe side of the tie.
        cut = self._subjects.get(claims.sub)
        return cut is not None and claims.iat <= cut[0]
