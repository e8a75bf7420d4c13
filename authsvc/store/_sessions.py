"""Sessions, refresh-token rotation and the revocation log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from authsvc.domain.audit.record import AuditEvent
from authsvc.domain.models import RefreshTokenRecord, Revocation, Session
from authsvc.domain.ports import RotateDecision
from authsvc.store import _convert as cv
from authsvc.store._audit import append_cte, append_in, append_params
from authsvc.store._base import NOTIFY_CHANNEL, Base, notify, translated


class SessionsMixin(Base):
    # sessions and refresh tokens ------------------------------------------

    @translated
    async def create_session(
        self,
        session: Session,
        token: RefreshTokenRecord,
        audit: str | AuditEvent = "",
        reset_throttles: Sequence[str] = (),
    ) -> bool:
        """The session, its first refresh token, (``audit``) the login's audit
        event and (``reset_throttles``) the counters its success clears: one
        statement, so one round trip and atomic. False when the user's sessions
        were revoked after this login proved itself (the counters are cleared
        all the same: the credential was right; no event is written)."""
        if isinstance(audit, str) and audit:
            audit = AuditEvent.of(
                audit, session.created_at, outcome="ok", actor=session.user_id, subject=session.subject,
                session_id=session.id, peer=session.peer,
            )  # fmt: skip
        event = audit if isinstance(audit, AuditEvent) else None
        status = await self._pool.execute(
            _CREATE_SESSION_AUDITED if event is not None else _CREATE_SESSION,
            uuid.UUID(session.id), uuid.UUID(session.user_id), session.subject,
            list(session.audiences), list(session.scopes), list(session.amr), session.acr,
            cv.ts(session.auth_time), cv.ts(session.created_at), cv.ts(session.expires_at),
            session.peer, session.user_agent, session.cert_thumbprint,
            token.id, token.secret_hash, list(token.scopes), cv.ts(token.created_at), cv.ts(token.expires_at),
            list(reset_throttles), *(append_params(event) if event is not None else ()),
        )  # fmt: skip
        return bool(status.endswith(" 1"))

    @translated
    async def session(self, session_id: str) -> Session | None:
        row = await self._pool.fetchrow("SELECT * FROM sessions WHERE id = $1", uuid.UUID(session_id))
        return None if row is None else cv.session(row)

    @translated
    async def sessions_of(self, subject: str, include_revoked: bool) -> list[Session]:
        rows = await self._pool.fetch(
            "SELECT * FROM sessions WHERE subject = $1 AND ($2 OR revoked_at IS NULL) ORDER BY created_at",
            subject, include_revoked,
        )  # fmt: skip
        return [cv.session(r) for r in rows]

    @translated
    async def refresh_token(self, token_id: str) -> tuple[RefreshTokenRecord, Session] | None:
        row = await self._pool.fetchrow("SELECT * FROM refresh_tokens WHERE id = $1", token_id)
        if row is None:
            return None
        srow = await self._pool.fetchrow("SELECT * FROM sessions WHERE id = $1", row["session_id"])
        assert srow is not None  # a foreign key guarantees it
        return cv.refresh_token(row), cv.session(srow)

    @translated
    async def rotate_refresh(
        self, token_id: str, decide: Callable[[RefreshTokenRecord, Session, bool], RotateDecision]
    ) -> RotateDecision | None:
        """Lock the token and its session, let the domain decide, apply it, all
        in one transaction: two uses of one token serialise on the row lock,
        and the second sees the first one's ``used_at``. Four round trips: the
        locking read, one statement for the whole rotation, and the commit."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_SELECT_FOR_ROTATION, token_id)
            if row is None:
                return None
            session = cv.session(row["s"])
            record = replace(cv.refresh_token(row["t"]), successor_used_at=cv.epoch(row["successor_used_at"]))
            decision = decide(record, session, row["owner_disabled"])
            sid = uuid.UUID(session.id)
            event = decision.audit_event
            if event is None and decision.audit:
                event = AuditEvent.of(
                    decision.audit, decision.now, actor=session.subject, subject=session.subject,
                    session_id=session.id, peer=decision.peer,
                )  # fmt: skip
            if decision.new_token is not None:
                new = decision.new_token
                kek_id, sealed = decision.grace_sealed or (None, None)
                await conn.execute(
                    _ROTATE_AUDITED if event is not None else _ROTATE,
                    token_id, cv.ts(decision.now), new.id, kek_id, sealed, decision.peer, decision.user_agent,
                    sid, new.secret_hash, list(new.scopes), cv.ts(new.created_at), cv.ts(new.expires_at),
                    *(append_params(event) if event is not None else ()),
                )  # fmt: skip
            elif event is not None:
                if decision.revoke_session_until is not None:
                    await revoke_session_in(conn, sid, decision.revoke_session_until, decision.now)
                await append_in(conn, event)
            return decision

    # revocation ------------------------------------------------------------

    @translated
    async def revoke_session(
        self, session_id: str, now: float, expires_at: float, *, audit: AuditEvent | None = None
    ) -> bool:
        """``audit`` is written in the same transaction, when the session was live."""
        async with self._pool.acquire() as conn, conn.transaction():
            revoked = await revoke_session_in(conn, uuid.UUID(session_id), expires_at, now)
            if revoked and audit is not None:
                await append_in(conn, audit)
            return revoked

    @translated
    async def revoke_subject(
        self, subject: str, now: float, expires_at: float, *, audit: AuditEvent | None = None
    ) -> int:
        """Revoke every live session of ``subject`` and cut its session-less tokens."""
        async with self._pool.acquire() as conn, conn.transaction():
            count = await revoke_subject_in(conn, subject, now, expires_at)
            if audit is not None:
                await append_in(conn, audit)
            return count

    @translated
    async def revoke_jti(
        self, jti: str, now: float, expires_at: float, *, audit: AuditEvent | None = None
    ) -> Revocation:
        """One statement, so one round trip and one commit: the log entry, its
        notice and the audit row. Gives the entry, for the caller to apply at
        once without reading the log back."""
        args: list[Any] = ["jti", jti, cv.ts(now), cv.ts(expires_at), NOTIFY_CHANNEL]
        if audit is None:
            row = await self._pool.fetchrow(_REVOKE_JTI, *args)
        else:
            row = await self._pool.fetchrow(_REVOKE_JTI_AUDITED, *args, *append_params(audit))
        assert row is not None  # an INSERT ... RETURNING of one row
        return cv.revocation(row)

    @translated
    async def revocations_after(
        self, cursor: int, gaps: Sequence[int], now: float, limit: int = 5_000
    ) -> list[Revocation]:
        """Live entries after ``cursor`` (at most ``limit``, in order) and any
        of ``gaps`` that have appeared since."""
        rows = await self._pool.fetch(
            "(SELECT * FROM revocations WHERE seq > $1 AND expires_at > $3 ORDER BY seq LIMIT $4)"
            " UNION ALL (SELECT * FROM revocations WHERE seq = ANY($2::bigint[]) AND seq <= $1 AND expires_at > $3)",
            cursor, list(gaps), cv.ts(now), limit,
        )  # fmt: skip
        return [cv.revocation(r) for r in rows]

    @translated
    async def forget_grace_pairs(self, used_before: float) -> None:
        """Drop sealed successor pairs once their grace window is over."""
        await self._pool.execute(
            "UPDATE refresh_tokens SET grace_kek_id = NULL, grace_sealed = NULL"
            " WHERE grace_sealed IS NOT NULL AND used_at < $1",
            cv.ts(used_before),
        )

    @translated
    async def prune_revocations(self, now: float) -> int:
        status = await self._pool.execute("DELETE FROM revocations WHERE expires_at <= $1", cv.ts(now))
        return int(status.split()[-1])


# The session's user, share-locked, unless its sessions were revoked after this
# login's auth_time ($8). The lock waits for a revoke in flight (which updates
# the row) and then reads the row again, so a racing login sees the revoke.
# A disabled user opens no session either (the domain checks it first; this is
# the same rule where a racing disable is settled).
_LIVE_OWNER = """
    SELECT id FROM users WHERE id = $2 AND NOT disabled
    AND (sessions_valid_after IS NULL OR sessions_valid_after <= $8) FOR SHARE"""

# Both rows locked at once: a join with FOR UPDATE locks the token and its
# session; they come back as composite values, so their columns do not clash.
# The successor's used_at is read under the session's row lock, which every
# rotation of the session takes: it cannot change until this one commits.
# The owner's disabled flag rides along, unlocked (a disable revokes the
# session under the session's lock anyway).
_SELECT_FOR_ROTATION = (
    "SELECT t, s, n.used_at AS successor_used_at, u.disabled AS owner_disabled"
    " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id"
    " LEFT JOIN refresh_tokens n ON n.id = t.replaced_by WHERE t.id = $1 FOR UPDATE OF t, s"
)

# One statement: spend the old token, record the refresh on the session, audit
# it (the chain head is locked last, and held only to the commit), and insert
# the successor.
_ROTATE = """
WITH spent AS (
    UPDATE refresh_tokens SET used_at = $2, replaced_by = $3, grace_kek_id = $4, grace_sealed = $5 WHERE id = $1
), touched AS (
    UPDATE sessions SET last_refresh_at = $2, refresh_count = refresh_count + 1, peer = $6, user_agent = $7
    WHERE id = $8
){audit}
INSERT INTO refresh_tokens (id, session_id, secret_hash, scopes, created_at, expires_at)
VALUES ($3, $8, $9, $10, $11, $12)
"""
_ROTATE_AUDITED = _ROTATE.format(audit=", " + append_cte(13))
_ROTATE = _ROTATE.format(audit="")

# The login's statement: the session (if its owner is live), the audit event
# (if the session opened), the cleared counters and the first refresh token.
_CREATE_SESSION = (
    """
    WITH owner AS ("""  # noqa: S608 - constant fragments, no input
    + _LIVE_OWNER
    + """
    ), opened AS (
        INSERT INTO sessions (id, user_id, subject, audiences, scopes, amr, acr, auth_time,
                              created_at, expires_at, peer, user_agent, cert_thumbprint)
        SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM owner RETURNING id
    ), cleared AS (
        UPDATE throttle SET failures = 0, lockouts = 0, locked_until = NULL WHERE key = ANY($19::text[])
    ){audit}
    INSERT INTO refresh_tokens (id, session_id, secret_hash, scopes, created_at, expires_at)
    SELECT $14, id, $15, $16, $17, $18 FROM opened
    """
)
_CREATE_SESSION_AUDITED = _CREATE_SESSION.replace(
    "{audit}",
    ", " + append_cte(20, "EXISTS (SELECT 1 FROM opened)"),  # noqa: S608 - constant fragments
)
_CREATE_SESSION = _CREATE_SESSION.replace("{audit}", "")


# A revocation by jti in one statement: the entry, its notice (delivered at the
# commit; a latency shortcut only, readers also reconcile by cursor) and, in
# the audited form, the audit row.
_REVOKE_JTI = """
WITH logged AS (
    INSERT INTO revocations (kind, value, revoked_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING *
){audit}
SELECT logged.*, pg_notify($5, '') FROM logged
"""
_REVOKE_JTI_AUDITED = _REVOKE_JTI.format(audit=", " + append_cte(6))
_REVOKE_JTI = _REVOKE_JTI.format(audit="")


async def insert_token(conn: Any, token: RefreshTokenRecord) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (id, session_id, secret_hash, scopes, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        token.id, uuid.UUID(token.session_id), token.secret_hash, list(token.scopes),
        cv.ts(token.created_at), cv.ts(token.expires_at),
    )  # fmt: skip


async def append_revocation(conn: Any, kind: str, value: str, now: float, expires_at: float) -> None:
    await conn.execute(
        "INSERT INTO revocations (kind, value, revoked_at, expires_at) VALUES ($1, $2, $3, $4)",
        kind, value, cv.ts(now), cv.ts(expires_at),
    )  # fmt: skip
    # A latency shortcut only: readers also reconcile by cursor on a timer.
    await notify(conn, NOTIFY_CHANNEL)


async def revoke_subject_in(conn: Any, subject: str, now: float, expires_at: float) -> int:
    """Every live session of ``subject`` revoked and logged, and the subject
    cut, in two statements however many sessions there are."""
    try:
        user_id: uuid.UUID | None = uuid.UUID(subject)
    except ValueError:
        user_id = None  # a service client: no sessions, the subject cut covers it
    if user_id is not None:
        # First, so a login racing this one waits on the row and then sees it.
        await conn.execute("UPDATE users SET sessions_valid_after = $2 WHERE id = $1", user_id, cv.ts(now))
    revoked = await conn.fetchval(
        """
        WITH gone AS (
            UPDATE sessions SET revoked_at = $2 WHERE subject = $1 AND revoked_at IS NULL RETURNING id
        ), logged AS (
            INSERT INTO revocations (kind, value, revoked_at, expires_at)
            SELECT 'session', id::text, $2, $3 FROM gone
        )
        SELECT count(*) FROM gone
        """,
        subject, cv.ts(now), cv.ts(expires_at),
    )  # fmt: skip
    await append_revocation(conn, "subject", subject, now, expires_at)
    return int(revoked)


async def revoke_session_in(conn: Any, session_id: uuid.UUID, expires_at: float, now: float) -> bool:
    status = await conn.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", session_id, cv.ts(now)
    )
    if not status.endswith(" 1"):
        return False
    await append_revocation(conn, "session", str(session_id), now, expires_at)
    return True
