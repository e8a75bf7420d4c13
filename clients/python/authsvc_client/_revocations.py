"""The local revocation set a :class:`TokenVerifier` keeps from WatchRevocations.

The same rules as authsvc's own set (``authsvc.domain.sessions.revocation_set``), which this
package may not import: a token is revoked when its ``jti`` is listed; a token
with a session (``sid``) when its session is; a token without one (a service
client's) when its subject was cut at or after its ``iat``. Revoking a user
subject reaches its tokens through their sessions, each revoked by id. A
``key`` entry names a withdrawn signing key: the verifier drops it from its key
set (so its tokens are ``UNKNOWN_KEY``, as on the server) and never takes it
back from a key set fetched later (:meth:`RevocationSet.withdrawn_keys`).

Order and repeats do not matter: every entry is a maximum, so applying the same
event twice, or an earlier one late, gives the same set. The stream's
``resume_cursor`` (not ``seq``) is where a reconnect resumes, so an event that
committed late is sent again rather than lost.
"""

from __future__ import annotations

from typing import Protocol


class RevocationEntry(Protocol):
    """What an entry of the revocation log carries (a stream event, or a row
    of the log on the server)."""

    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def revoked_at(self) -> float: ...
    @property
    def expires_at(self) -> float: ...


class Revocable(Protocol):
    """What the rules read of a token: an access token's claims, or a
    Txn-Token's (which carries its subject's ``sid`` too, so revoking the
    session ends every token exchanged from it)."""

    @property
    def jti(self) -> str: ...
    @property
    def sid(self) -> str: ...
    @property
    def sub(self) -> str: ...
    @property
    def iat(self) -> int: ...


class RevocationSet:
    def __init__(self) -> None:
        self._jtis: dict[str, float] = {}  # jti -> forget after
        self._sessions: dict[str, float] = {}  # sid -> forget after
        self._subjects: dict[str, tuple[float, float]] = {}  # sub -> (revoked_at, forget after)
        self._keys: dict[str, float] = {}  # withdrawn kid -> forget after

    def __len__(self) -> int:
        return len(self._jtis) + len(self._sessions) + len(self._subjects) + len(self._keys)

    @property
    def withdrawn_keys(self) -> frozenset[str]:
        """Signing keys withdrawn: never to be trusted again, whatever a key set says."""
        return frozenset(self._keys)

    def add(self, event: RevocationEntry) -> bool:
        """Apply one event; False for a kind this client does not know."""
        if event.kind == "jti":
            self._jtis[event.value] = max(event.expires_at, self._jtis.get(event.value, 0.0))
        elif event.kind == "session":
            self._sessions[event.value] = max(event.expires_at, self._sessions.get(event.value, 0.0))
        elif event.kind == "subject":
            old_at, old_exp = self._subjects.get(event.value, (0.0, 0.0))
            self._subjects[event.value] = (max(old_at, event.revoked_at), max(old_exp, event.expires_at))
        elif event.kind == "key":
            self._keys[event.value] = max(event.expires_at, self._keys.get(event.value, 0.0))
        else:
            return False
        return True

    def prune(self, now: float) -> None:
        """Forget entries no live token can match any more."""
        self._jtis = {k: v for k, v in self._jtis.items() if v > now}
        self._sessions = {k: v for k, v in self._sessions.items() if v > now}
        self._subjects = {k: v for k, v in self._subjects.items() if v[1] > now}
        self._keys = {k: v for k, v in self._keys.items() if v > now}

    def is_revoked(self, claims: Revocable) -> bool:
        if claims.jti in self._jtis:
            return True
        if claims.sid:
            return claims.sid in self._sessions
        # iat has one-second precision: a token minted in the second of the
        # cut is revoked too (the safe side of the tie), as on the server.
        cut = self._subjects.get(claims.sub)
        return cut is not None and claims.iat <= cut[0]
