"""The in-memory revocation set: what each kind of entry revokes, and how the
cursor copes with sequence numbers that become visible out of order."""

from __future__ import annotations

import pytest

from authsvc.domain.models import Revocation
from authsvc.domain.sessions.revocation_set import GAP_TIMEOUT_SECONDS, PRUNE_INTERVAL, RevocationSet
from authsvc_client import AccessClaims

T = 1_700_000_000.0
TTL = 331  # access ttl + leeway + 1


def claims(jti: str = "jti-1", sub: str = "user-1", sid: str = "", iat: float = T) -> AccessClaims:
    return AccessClaims(
        iss="authsvc", sub=sub, aud=("orders",), exp=int(iat) + 300, iat=int(iat), nbf=int(iat), jti=jti, sid=sid
    )


def entry(seq: int, kind: str, value: str, at: float = T, ttl: float = TTL) -> Revocation:
    return Revocation(seq=seq, kind=kind, value=value, revoked_at=at, expires_at=at + ttl)


def seqs(entries: list[Revocation]) -> list[int]:
    return [e.seq for e in entries]


# --- what is revoked ---------------------------------------------------------------


def test_empty_set_revokes_nothing() -> None:
    rs = RevocationSet()
    assert len(rs) == 0
    assert rs.cursor == 0
    assert rs.gaps == []
    assert not rs.is_revoked(claims())
    assert not rs.is_revoked(claims(sid="s-1"))


def test_jti() -> None:
    rs = RevocationSet()
    rs.apply([entry(1, "jti", "jti-1")], T)
    assert rs.is_revoked(claims(jti="jti-1"))
    assert rs.is_revoked(claims(jti="jti-1", sid="s-1"))  # a token of a session, revoked by itself
    assert rs.is_revoked(claims(jti="jti-1", sub="someone-else"))
    assert not rs.is_revoked(claims(jti="jti-2"))
    assert not rs.is_revoked(claims(jti="jti-2", sid="s-1"))


def test_session() -> None:
    rs = RevocationSet()
    rs.apply([entry(1, "session", "s-1")], T)
    assert rs.is_revoked(claims(jti="a", sid="s-1"))
    assert rs.is_revoked(claims(jti="b", sid="s-1", iat=T + 100))  # every token of the session, any time
    assert not rs.is_revoked(claims(jti="c", sid="s-2"))
    assert not rs.is_revoked(claims(jti="d"))  # no sid: a session entry says nothing about it


def test_subject_cuts_session_less_tokens_issued_up_to_the_revocation() -> None:
    rs = RevocationSet()
    rs.apply([entry(1, "subject", "svc-1", at=T)], T)
    assert rs.is_revoked(claims(sub="svc-1", iat=T - 100))
    assert rs.is_revoked(claims(sub="svc-1", iat=T))  # same second: the safe side of the tie
    assert rs.is_revoked(claims(sub="svc-1", iat=T + 0.9))  # iat truncates to the second
    assert not rs.is_revoked(claims(sub="svc-1", iat=T + 1))  # minted after: a fresh login
    assert not rs.is_revoked(claims(sub="svc-2", iat=T - 100))


def test_subject_cut_does_not_apply_to_tokens_with_a_session() -> None:
    # A user's tokens are cut by their sessions; revoking the subject writes one
    # session entry per session, and the subject entry itself skips sid tokens.
    rs = RevocationSet()
    rs.apply([entry(1, "subject", "user-1", at=T)], T)
    assert not rs.is_revoked(claims(sub="user-1", sid="s-1", iat=T - 100))
    rs.apply([entry(2, "session", "s-1", at=T)], T)
    assert rs.is_revoked(claims(sub="user-1", sid="s-1", iat=T - 100))


def test_a_later_subject_cut_moves_forward_never_back() -> None:
    rs = RevocationSet()
    rs.apply([entry(1, "subject", "svc-1", at=T + 50)], T + 50)
    rs.apply([entry(2, "subject", "svc-1", at=T)], T + 50)  # an older cut arrives later
    assert rs.is_revoked(claims(sub="svc-1", iat=T + 50))
    assert not rs.is_revoked(claims(sub="svc-1", iat=T + 51))
    rs.apply([entry(3, "subject", "svc-1", at=T + 100)], T + 100)
    assert rs.is_revoked(claims(sub="svc-1", iat=T + 100))


def test_unknown_kinds_are_ignored() -> None:
    rs = RevocationSet()
    fresh = rs.apply([entry(1, "client", "jti-1")], T)
    assert seqs(fresh) == [1]
    assert rs.cursor == 1
    assert len(rs) == 0
    assert not rs.is_revoked(claims(jti="jti-1"))


# --- the cursor and its gaps ---------------------------------------------------------


def test_in_order_entries_move_the_cursor() -> None:
    rs = RevocationSet()
    fresh = rs.apply([entry(1, "jti", "a"), entry(2, "jti", "b"), entry(3, "session", "s")], T)
    assert seqs(fresh) == [1, 2, 3]
    assert rs.cursor == 3
    assert rs.gaps == []
    assert len(rs) == 3


def test_out_of_order_within_one_batch() -> None:
    rs = RevocationSet()
    fresh = rs.apply([entry(3, "jti", "c"), entry(1, "jti", "a"), entry(2, "jti", "b")], T)
    assert seqs(fresh) == [1, 2, 3]  # given back in sequence order
    assert rs.cursor == 3
    assert rs.gaps == []


def test_a_later_number_seen_first_leaves_a_gap_that_fills() -> None:
    rs = RevocationSet()
    assert seqs(rs.apply([entry(1, "jti", "a"), entry(4, "jti", "d")], T)) == [1, 4]
    assert rs.cursor == 4
    assert rs.gaps == [2, 3]
    assert not rs.is_revoked(claims(jti="b"))

    # The slow transaction commits: its entry is below the cursor but still taken.
    assert seqs(rs.apply([entry(3, "jti", "c")], T + 1)) == [3]
    assert rs.gaps == [2]
    assert rs.is_revoked(claims(jti="c"))
    assert seqs(rs.apply([entry(2, "jti", "b"), entry(5, "jti", "e")], T + 2)) == [2, 5]
    assert rs.gaps == []
    assert rs.cursor == 5
    assert all(rs.is_revoked(claims(jti=j)) for j in "abcde")


def test_repeated_entries_are_ignored() -> None:
    rs = RevocationSet()
    rs.apply([entry(1, "jti", "a"), entry(3, "jti", "c")], T)
    assert rs.apply([entry(1, "jti", "a"), entry(3, "jti", "c")], T) == []
    assert seqs(rs.apply([entry(2, "jti", "b"), entry(2, "jti", "b")], T)) == [2]  # once, even twice in a batch
    assert rs.apply([entry(2, "jti", "b")], T) == []
    assert rs.cursor == 3
    assert rs.gaps == []
    assert len(rs) == 3


def test_gaps_are_forgotten_after_the_timeout() -> None:
    rs = RevocationSet()
    rs.apply([entry(1, "jti", "a"), entry(3, "jti", "c")], T)
    assert rs.gaps == [2]
    rs.prune(T + GAP_TIMEOUT_SECONDS - 0.001)
    assert rs.gaps == [2]  # a slow transaction may still commit
    rs.apply([entry(6, "jti", "f")], T + 30)  # later gaps keep their own clock
    assert rs.gaps == [2, 4, 5]
    rs.prune(T + GAP_TIMEOUT_SECONDS)
    assert rs.gaps == [4, 5]  # 2 was a rolled-back insert
    # A number forgotten as a hole is below the cursor: it counts as seen.
    assert rs.apply([entry(2, "jti", "b")], T + GAP_TIMEOUT_SECONDS) == []
    assert not rs.is_revoked(claims(jti="b"))
    rs.prune(T + 30 + GAP_TIMEOUT_SECONDS)
    assert rs.gaps == []
    assert rs.cursor == 6


def test_gap_timeout_is_a_minute() -> None:
    assert GAP_TIMEOUT_SECONDS == 60.0


# --- pruning -------------------------------------------------------------------------


def test_prune_drops_expired_entries() -> None:
    rs = RevocationSet()
    rs.apply(
        [
            entry(1, "jti", "short", ttl=10),
            entry(2, "jti", "long", ttl=1000),
            entry(3, "session", "s-short", ttl=10),
            entry(4, "session", "s-long", ttl=1000),
            entry(5, "subject", "svc-short", ttl=10),
            entry(6, "subject", "svc-long", ttl=1000),
        ],
        T,
    )
    assert len(rs) == 6
    rs.prune(T + 9.999)
    assert len(rs) == 6
    rs.prune(T + 10)  # sweeps are rate-limited: too soon after the last one
    assert len(rs) == 6
    rs.prune(T + 9.999 + PRUNE_INTERVAL)  # expired entries: nothing they cover is still valid
    assert len(rs) == 3
    assert not rs.is_revoked(claims(jti="short"))
    assert rs.is_revoked(claims(jti="long"))
    assert not rs.is_revoked(claims(jti="x", sid="s-short"))
    assert rs.is_revoked(claims(jti="x", sid="s-long"))
    assert not rs.is_revoked(claims(jti="x", sub="svc-short", iat=T - 1))
    assert rs.is_revoked(claims(jti="x", sub="svc-long", iat=T - 1))
    rs.prune(T + 1000)
    assert len(rs) == 0
    assert rs.cursor == 6  # pruning never moves the cursor back


def test_a_repeat_revocation_extends_the_expiry() -> None:
    rs = RevocationSet()
    rs.apply([entry(1, "session", "s-1", ttl=10)], T)
    rs.apply([entry(2, "session", "s-1", at=T + 5, ttl=100)], T + 5)
    rs.apply([entry(3, "session", "s-1", at=T + 6, ttl=1)], T + 6)  # a shorter one never shortens it
    rs.prune(T + 50)
    assert rs.is_revoked(claims(sid="s-1"))
    rs.prune(T + 105)
    assert not rs.is_revoked(claims(sid="s-1"))


@pytest.mark.parametrize("kind", ["jti", "session", "subject"])
def test_prune_keeps_len_consistent(kind: str) -> None:
    rs = RevocationSet()
    rs.apply([entry(i, kind, f"v{i % 3}") for i in range(1, 10)], T)
    assert len(rs) == 3  # one per distinct value
    rs.prune(T + TTL)
    assert len(rs) == 0


def test_a_replica_starting_on_a_pruned_log_tracks_few_holes() -> None:
    # The log was pruned up to seq 1,000,000: what lies below is gone, not in flight.
    rs = RevocationSet()
    rs.apply([entry(1_000_000, "jti", "late")], T)
    assert len(rs.gaps) <= 1_000
    assert rs.cursor == 1_000_000
