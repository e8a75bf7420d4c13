"""The audit trail: chained appends, the paged query, the snapshot scan for
verification, and pruning to a checkpoint.

An append is one statement: it moves its lane's chain head (one row,
row-locked by the UPDATE until the transaction ends) and inserts the row with
the head's new seq and hash, so that appends from every replica to one lane
are serialised by Postgres into one gapless sequence. The lane is the
connection's (``1 + pg_backend_pid() % LANES``): a connection runs one
transaction at a time, so its appends never wait on each other, and sixteen
lanes spread the rest. The SQL computes only the link,
``sha256(prev || int8send(seq) || digest)``; the event's digest (its
canonical encoding) comes from ``authsvc.domain.audit.chain``, where the
verifier checks both.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from authsvc.domain.audit import chain
from authsvc.domain.audit.chain import ChainRow, Checkpoint
from authsvc.domain.audit.query import AuditEntry, AuditFilter
from authsvc.domain.audit.record import AuditEvent
from authsvc.domain.models import CallInfo
from authsvc.store import _convert as cv
from authsvc.store._base import Base, translated

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIELDS = "at, event, outcome, actor, subject, client_id, session_id, peer, request_id, trace_id, detail"
_TYPES = ("timestamptz", "text", "text", "text", "text", "text", "uuid", "text", "text", "text", "text")
#: How many parameters ``append_cte`` takes: the digest and the fields.
APPEND_PARAMS = 1 + len(_TYPES)


def append_cte(first: int, when: str = "") -> str:
    """Two CTEs, ``chain_head`` and ``audited``, that append one event whose
    parameters (``append_params``) start at ``$first``; ``when`` is an SQL
    condition (over earlier CTEs) under which the event is written at all.
    The head is locked last in the statement, and held only to the commit."""
    digest = f"${first}::bytea"
    values = ", ".join(f"${first + 1 + i}::{t}" for i, t in enumerate(_TYPES))
    condition = f" AND ({when})" if when else ""
    # The row is written from a one-row select joined to the moved head: with
    # the lane's head gone (deleted by someone who wants writes unaudited) its
    # columns are NULL, and the NOT NULL constraints fail the whole statement,
    # so no audited write can commit without its row.
    where = f" WHERE {when}" if when else ""
    return f"""chain_head AS (
        UPDATE audit_chain SET seq = seq + 1, prev_hash = hash, hash = sha256(hash || int8send(seq + 1) || {digest})
        WHERE id = 1 + pg_backend_pid() % {chain.LANES}{condition} RETURNING id, seq, prev_hash, hash
    ), audited AS (
        INSERT INTO audit_log (lane, lane_seq, prev_hash, hash, {_FIELDS})
        SELECT h.id, h.seq, h.prev_hash, h.hash, {values} FROM (SELECT 1{where}) AS one LEFT JOIN chain_head h ON true
    )"""  # noqa: S608 - fixed fragments and numbered parameters only


def append_params(event: AuditEvent) -> list[Any]:
    return [
        chain.digest(event), _EPOCH + timedelta(microseconds=event.at_us), event.event, event.outcome,
        event.actor, event.subject, event.client_id, uuid.UUID(event.session_id) if event.session_id else None,
        event.peer, event.request_id, event.trace_id, event.detail,
    ]  # fmt: skip


# The paged query; ``beyond`` and ``order`` are fixed words chosen in code.
_PAGE = (
    "SELECT * FROM audit_log WHERE ($1 = '' OR subject = $1) AND ($2 = '' OR event = $2)"
    " AND ($3 = '' OR actor = $3) AND ($4::timestamptz IS NULL OR at >= $4)"
    " AND ($5::timestamptz IS NULL OR at < $5)"
    " AND ($6::bigint IS NULL OR seq {beyond} $6) ORDER BY seq {order} LIMIT $7"
)

_APPEND = "WITH " + append_cte(1) + " SELECT 1"
_ENDS = "SELECT id, seq, hash FROM audit_{} ORDER BY id"


async def append_in(conn: Any, event: AuditEvent) -> None:
    """Append ``event`` on ``conn``, inside whatever transaction it is in."""
    await conn.execute(_APPEND, *append_params(event))


def _point(row: Any) -> Checkpoint:
    return Checkpoint(row["seq"], bytes(row["hash"]))


def _at(epoch: float | None) -> datetime | None:
    """A bound of a time filter, rounded as events' times are (AuditEvent.of),
    so that "since the moment of that event" includes the event."""
    return None if epoch is None else _EPOCH + timedelta(microseconds=round(epoch * 1_000_000))


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        event=row["event"], at_us=(row["at"] - _EPOCH) // timedelta(microseconds=1), outcome=row["outcome"],
        actor=row["actor"], subject=row["subject"], client_id=row["client_id"],
        session_id=str(row["session_id"]) if row["session_id"] is not None else "", peer=row["peer"],
        request_id=row["request_id"], trace_id=row["trace_id"], detail=row["detail"],
    )  # fmt: skip


class AuditMixin(Base):
    @translated
    async def audit(
        self,
        event: str | AuditEvent,
        now: float = 0.0,
        *,
        subject: str = "",
        session_id: str = "",
        peer: str = "",
        detail: str = "",
        actor: str = "",
        client_id: str = "",
        outcome: str = "",
        call: CallInfo | None = None,
    ) -> None:
        """Append one event to the chain: an ``AuditEvent``, or its name and
        fields (the older form, kept working)."""
        if not isinstance(event, AuditEvent):
            event = AuditEvent.of(
                event, now, call=call, subject=subject, session_id=session_id, peer=peer, detail=detail,
                actor=actor, client_id=client_id, outcome=outcome,
            )  # fmt: skip
        async with self._pool.acquire() as conn:
            await append_in(conn, event)

    @translated
    async def audit_events(self, subject: str) -> list[str]:
        rows = await self._pool.fetch("SELECT event FROM audit_log WHERE subject = $1 ORDER BY seq", subject)
        return [r["event"] for r in rows]

    @translated
    async def audit_page(
        self, filters: AuditFilter, after_seq: int | None, limit: int, newest_first: bool
    ) -> list[AuditEntry]:
        order, beyond = ("DESC", "<") if newest_first else ("ASC", ">")
        rows = await self._pool.fetch(
            _PAGE.format(beyond=beyond, order=order),
            filters.subject, filters.type, filters.actor, _at(filters.since),
            _at(filters.until), after_seq, limit,
        )  # fmt: skip
        return [AuditEntry(r["seq"], _event(r)) for r in rows]

    @translated
    async def scan_audit_chain(
        self, start: Callable[[int, Checkpoint | None, Checkpoint | None], Callable[[ChainRow], None]], page: int = 2000
    ) -> None:
        """Each lane's checkpoint and head (None where the row is missing),
        then its rows in seq order, all from one snapshot (a repeatable-read,
        read-only transaction): what the verifier sees is one state of the
        trail however many replicas append. Every lane 1..LANES is started,
        whether or not it has rows, heads or checkpoints."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            cps = {r["id"]: _point(r) for r in await conn.fetch(_ENDS.format("checkpoint"))}
            heads = {r["id"]: _point(r) for r in await conn.fetch(_ENDS.format("chain"))}
            lanes = sorted(set(range(1, chain.LANES + 1)) | cps.keys() | heads.keys())
            feeds = {lane: start(lane, cps.get(lane), heads.get(lane)) for lane in lanes}
            async for row in conn.cursor("SELECT * FROM audit_log ORDER BY lane, lane_seq", prefetch=page):
                lane = row["lane"]
                if lane not in feeds:
                    feeds[lane] = start(lane, None, None)
                feeds[lane](ChainRow(row["lane_seq"], bytes(row["prev_hash"]), bytes(row["hash"]), _event(row), lane))

    @translated
    async def prune_audit(self, before: float) -> int:
        """In every lane, delete the rows from the old end up to the last one
        written before ``before`` and move the lane's checkpoint to it, all in
        one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM audit_checkpoint FOR UPDATE")
            cuts = await conn.fetch(
                "SELECT lane, lane_seq, hash FROM audit_log WHERE (lane, lane_seq) IN"
                " (SELECT lane, max(lane_seq) FROM audit_log WHERE at < $1 GROUP BY lane)",
                cv.ts(before),
            )
            dropped = 0
            for cut in cuts:
                await conn.execute(
                    "UPDATE audit_checkpoint SET seq = $2, hash = $3, at = now() WHERE id = $1",
                    cut["lane"], cut["lane_seq"], cut["hash"],
                )  # fmt: skip
                status = await conn.execute(
                    "DELETE FROM audit_log WHERE lane = $1 AND lane_seq <= $2", cut["lane"], cut["lane_seq"]
                )
                dropped += int(status.split()[-1])
            return dropped
