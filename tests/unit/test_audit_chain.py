"""The audit chain's rules, on rows built in memory: every kind of tampering
is named, with its seq; an untouched chain (pruned or not) passes."""

from __future__ import annotations

import dataclasses
import hashlib

from authsvc.domain.audit import chain
from authsvc.domain.audit.chain import GENESIS, ChainRow, ChainVerifier, Checkpoint
from authsvc.domain.audit.record import AuditEvent
from authsvc.domain.models import CallInfo

GENESIS_POINT = Checkpoint()


def build(n: int) -> list[ChainRow]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        event = AuditEvent.of("login_ok", 1_700_000_000.0 + seq, subject=f"user-{seq}", outcome="ok")
        h = chain.link(prev, seq, chain.digest(event))
        rows.append(ChainRow(seq, prev, h, event))
        prev = h
    return rows


def check(rows: list[ChainRow], checkpoint: Checkpoint = GENESIS_POINT, head: Checkpoint | None = None):
    last = rows[-1] if rows else None
    verifier = ChainVerifier(checkpoint, head or (Checkpoint(last.seq, last.hash) if last else checkpoint))
    for row in rows:
        verifier.feed(row)
    return [(p.seq, p.kind) for p in verifier.finish()]


def test_known_answer() -> None:
    """The encoding is a contract with auditors: RFC 8785 JSON, then the link."""
    event = AuditEvent("login_ok", 1_000_000, outcome="ok", subject="u1", peer="ipv4:10.0.0.1:5000")
    assert chain.canonical(event) == (
        b'{"actor":"","at_us":1000000,"client_id":"","detail":"","event":"login_ok","outcome":"ok",'
        b'"peer":"ipv4:10.0.0.1:5000","request_id":"","session_id":"","subject":"u1","trace_id":"","v":1}'
    )
    digest = hashlib.sha256(chain.canonical(event)).digest()
    assert chain.link(GENESIS, 1, digest) == hashlib.sha256(GENESIS + (1).to_bytes(8, "big") + digest).digest()


def test_untouched_chain_passes() -> None:
    assert check(build(20)) == []
    assert check([]) == []


def test_edited_row() -> None:
    rows = build(10)
    rows[4] = dataclasses.replace(rows[4], event=dataclasses.replace(rows[4].event, subject="someone-else"))
    assert check(rows) == [(5, "edited")]


def test_edited_row_with_its_hash_recomputed() -> None:
    rows = build(10)
    forged = dataclasses.replace(rows[4].event, outcome="failed")
    rows[4] = dataclasses.replace(rows[4], event=forged, hash=chain.link(rows[4].prev_hash, 5, chain.digest(forged)))
    assert check(rows, head=Checkpoint(10, rows[9].hash)) == [(6, "broken-link")]


def test_deleted_rows() -> None:
    rows = build(10)
    head = Checkpoint(10, rows[-1].hash)
    assert check(rows[:3] + rows[5:], head=head) == [(4, "deleted")]
    assert check(rows[:8], head=head) == [(9, "deleted")]  # from the end: the head still says 10
    assert check(rows[1:], head=head) == [(1, "deleted")]  # from the start, without a checkpoint


def test_inserted_rows() -> None:
    rows = build(5)
    head = Checkpoint(5, rows[-1].hash)
    extra = dataclasses.replace(rows[2], seq=6)
    assert check([*rows, extra], head=head) == [(6, "inserted")]
    again = dataclasses.replace(rows[2], event=dataclasses.replace(rows[2].event, detail="forged"))
    assert check([*rows[:3], again, *rows[3:]], head=head) == [(3, "inserted")]


def test_pruned_chain_passes_from_its_checkpoint() -> None:
    rows = build(10)
    cut = Checkpoint(4, rows[3].hash)
    assert check(rows[4:], checkpoint=cut) == []
    assert check(rows[5:], checkpoint=cut) == [(5, "deleted")]
    assert check(rows[3:], checkpoint=cut) == [(4, "inserted")]  # at the checkpoint: should be gone
    wrong = Checkpoint(4, GENESIS)
    assert check(rows[4:], checkpoint=wrong) == [(5, "broken-link")]


def test_head_mismatch() -> None:
    rows = build(3)
    assert check(rows, head=Checkpoint(3, GENESIS)) == [(3, "head-mismatch")]


def test_event_takes_call_details_and_bounds_fields() -> None:
    call = CallInfo(peer="ipv4:1.2.3.4:5", request_id="r-1", trace_id="ab" * 16)
    event = AuditEvent.of("x", 1.5, call=call, detail="d" * 10_000)
    assert (event.peer, event.request_id, event.trace_id, event.at_us) == (call.peer, "r-1", "ab" * 16, 1_500_000)
    assert len(event.detail) == 512
