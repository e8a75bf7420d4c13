"""Which database errors mean "not there right now" (UNAVAILABLE, and for a
failover a fresh pool) and which are real errors, by SQLSTATE class. The
failovers themselves are in tests/ha; these are the codes PgBouncer and a
demoted primary send that a local test database will not."""

from __future__ import annotations

import asyncpg
import pytest

from authsvc.store._base import _is_failover, is_unavailable


@pytest.mark.parametrize(
    ("error", "unavailable", "failover"),
    [
        (asyncpg.ConnectionFailureError("gone"), True, True),  # 08006
        (asyncpg.ProtocolViolationError("pgbouncer: server conn crashed?"), True, True),  # 08P01
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True, True),  # 57P01
        (asyncpg.CrashShutdownError("crash of another server process"), True, True),  # 57P02
        (asyncpg.CannotConnectNowError("the database system is starting up"), True, True),  # 57P03
        (asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"), True, True),
        (asyncpg.TargetServerAttributeNotMatched("no primary"), True, True),
        (asyncpg.TooManyConnectionsError("too many clients"), True, False),  # 53300: the same server, busy
        (asyncpg.QueryCanceledError("statement timeout"), True, False),
        (ConnectionResetError(), True, True),
        (asyncpg.SerializationError("could not serialize access"), False, False),  # 40001: not a failover
        (asyncpg.UndefinedTableError("no such table"), False, False),
        (asyncpg.DataError("bad input"), False, False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_errors_by_sqlstate_class(error: Exception, unavailable: bool, failover: bool) -> None:
    assert is_unavailable(error) is unavailable
    assert _is_failover(error) is failover
