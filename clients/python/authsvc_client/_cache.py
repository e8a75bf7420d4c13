"""A bounded least-recently-used map of verified tokens to their claims, with
indexes so that a revocation event drops exactly the entries it names."""

from __future__ import annotations

from collections import OrderedDict

from ._models import RevocationEvent
from ._verify import AccessClaims


class ClaimsCache:
    """Holds only claims whose signature, issuer and type were checked. A hit
    is a starting point, never a verdict: the caller still applies time,
    requirements and revocation to it."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("cache size must not be negative")
        self._size = size
        self._entries: OrderedDict[str, AccessClaims] = OrderedDict()
        self._by_jti: dict[str, set[str]] = {}
        self._by_sid: dict[str, set[str]] = {}
        self._by_sub: dict[str, set[str]] = {}  # session-less tokens only: cut by subject

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> AccessClaims | None:
        claims = self._entries.get(token)
        if claims is not None:
            self._entries.move_to_end(token)
        return claims

    def put(self, token: str, claims: AccessClaims) -> None:
        if self._size == 0 or token in self._entries:
            return
        self._entries[token] = claims
        self._index(claims).setdefault(self._key(claims), set()).add(token)
        self._by_jti.setdefault(claims.jti, set()).add(token)
        while len(self._entries) > self._size:
            self.drop(next(iter(self._entries)))

    def drop(self, token: str) -> None:
        claims = self._entries.pop(token, None)
        if claims is None:
            return
        _discard(self._by_jti, claims.jti, token)
        _discard(self._index(claims), self._key(claims), token)

    def drop_revoked(self, event: RevocationEvent) -> int:
        """Drop every entry the event revokes; give how many."""
        if event.kind == "jti":
            tokens = set(self._by_jti.get(event.value, ()))
        elif event.kind == "session":
            tokens = set(self._by_sid.get(event.value, ()))
        elif event.kind == "subject":
            tokens = {t for t in self._by_sub.get(event.value, ()) if self._entries[t].iat <= event.revoked_at}
        else:
            tokens = set()
        for token in tokens:
            self.drop(token)
        return len(tokens)

    def clear(self) -> None:
        self._entries.clear()
        self._by_jti.clear()
        self._by_sid.clear()
        self._by_sub.clear()

    def _index(self, claims: AccessClaims) -> dict[str, set[str]]:
        return self._by_sid if claims.sid else self._by_sub

    @staticmethod
    def _key(claims: AccessClaims) -> str:
        return claims.sid or claims.sub


def _discard(index: dict[str, set[str]], key: str, token: str) -> None:
    tokens = index.get(key)
    if tokens is not None:
        tokens.discard(token)
        if not tokens:
            del index[key]
