"""Use cases over the whole trail: verify the chain, prune its old end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from authsvc.domain.audit.chain import ChainRow, ChainVerifier, Checkpoint, Problem
from authsvc.domain.ports import Store


@dataclass(frozen=True, slots=True)
class Verification:
    checkpoint: Checkpoint
    head: Checkpoint
    rows: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(store: Store) -> Verification:
    """Check every row against the checkpoint and the head. The store reads
    the ends and the rows in one snapshot, so appends and prunes running
    meanwhile neither show as problems nor hide one."""
    checkers: list[ChainVerifier] = []

    def start(checkpoint: Checkpoint, head: Checkpoint) -> Callable[[ChainRow], None]:
        checkers.append(ChainVerifier(checkpoint, head))
        return checkers[-1].feed

    await store.scan_audit_chain(start)
    checker = checkers[0]
    problems = checker.finish()
    return Verification(checker.checkpoint, checker.head, checker.rows, tuple(problems))


async def prune(store: Store, now: float, retention: float) -> int:
    """Drop the rows older than ``retention`` seconds from the old end and move
    the checkpoint to the last one dropped. Gives how many were dropped."""
    return await store.prune_audit(now - retention)
