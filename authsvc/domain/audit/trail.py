"""Use cases over the whole trail: verify the chain, prune its old end."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from authsvc.domain.audit.chain import LANES, ChainRow, ChainVerifier, Checkpoint, Problem
from authsvc.domain.ports import Store


@dataclass(frozen=True, slots=True)
class Lane:
    """One lane of the trail as verified: where it starts and its head."""

    lane: int
    checkpoint: Checkpoint
    head: Checkpoint


@dataclass(frozen=True, slots=True)
class Verification:
    lanes: tuple[Lane, ...]
    rows: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def fingerprint(self) -> str:
        """SHA-256 over every lane's head: the one value to keep elsewhere and
        compare later (the chain's own evidence ends at its heads)."""
        text = ";".join(f"{a.lane}:{a.head.seq}:{a.head.hash.hex()}" for a in self.lanes)
        return hashlib.sha256(text.encode()).hexdigest()


async def verify(store: Store) -> Verification:
    """Check every row of every lane against its checkpoint and head. The
    store reads the ends and the rows in one snapshot, so appends and prunes
    running meanwhile neither show as problems nor hide one."""
    checkers: list[ChainVerifier] = []

    missing: list[Problem] = []

    def start(lane: int, checkpoint: Checkpoint | None, head: Checkpoint | None) -> Callable[[ChainRow], None]:
        # A lane's ends are part of the evidence: without its head, appends to
        # the lane would not be recorded; without its checkpoint, where it
        # starts is unknown; a lane outside 1..LANES was made by hand.
        if not 1 <= lane <= LANES:
            missing.append(Problem(0, "unknown-lane", f"a lane outside 1..{LANES}", lane=lane))
        if head is None:
            missing.append(Problem(0, "missing-head", "the lane's chain head is gone", lane=lane))
        if checkpoint is None:
            missing.append(Problem(0, "missing-checkpoint", "the lane's checkpoint is gone", lane=lane))
        checkers.append(ChainVerifier(checkpoint or Checkpoint(), head or Checkpoint(), lane))
        return checkers[-1].feed

    await store.scan_audit_chain(start)
    problems = missing + [p for checker in checkers for p in checker.finish()]
    lanes = tuple(Lane(c.lane, c.checkpoint, c.head) for c in checkers)
    return Verification(lanes, sum(c.rows for c in checkers), tuple(problems))


async def prune(store: Store, now: float, retention: float) -> int:
    """Drop the rows older than ``retention`` seconds from the old end and move
    the checkpoint to the last one dropped. Gives how many were dropped."""
    return await store.prune_audit(now - retention)
