"""An embedded PostgreSQL (pgserver) for running without a database URL."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class NoEmbeddedDatabase(RuntimeError):
    """No embedded database to attach to, and none may be created here."""


def _running(pgdata: Path) -> bool:
    """Whether a PostgreSQL already serves ``pgdata`` (another authsvc's)."""
    from pgserver.postgres_server import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
        return info is not None and bool(info.is_running())
    except Exception:  # noqa: BLE001 - a stale or odd pid file: pgserver sorts it out
        return False


def start_embedded(data_dir: Path, *, create: bool = True) -> tuple[str, Any]:
    """Start, or attach to, the PostgreSQL in ``data_dir/pg``; give its URL and a
    handle. ``create=False`` (the admin commands) refuses to make a new, empty
    database: a command run from the wrong folder must say so, not quietly work
    on a database of its own."""
    try:
        with warnings.catch_warnings():
            # pgserver keeps its lock file in a runtime folder; where XDG_RUNTIME_DIR
            # is unset (containers, su) platformdirs warns about the fallback.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        raise NoEmbeddedDatabase(
            "AUTHSVC_DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "pip install 'authsvc[embedded]' or set AUTHSVC_DATABASE_URL"
        ) from exc
    pgdata = (data_dir / "pg").resolve()
    fresh = not (pgdata / "PG_VERSION").exists()
    if fresh and not create:
        raise NoEmbeddedDatabase(
            f"AUTHSVC_DATA_DIR: no embedded database in {data_dir}: start `authsvc serve` first (it creates one), "
            "run this where the server's .authsvc folder is (or below it), or set AUTHSVC_DATA_DIR or "
            "AUTHSVC_DATABASE_URL"
        )
    attached = not fresh and _running(pgdata)
    # pgserver logs each step of initdb and pg_ctl at INFO (about 150 lines on
    # a first start): ours is the one line that matters; theirs at DEBUG only.
    logging.getLogger("pgserver").setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url: str = server.get_uri()
    if fresh:
        log.warning(
            "AUTHSVC_DATABASE_URL is not set: created a NEW, EMPTY embedded PostgreSQL in %s "
            "(admin commands find it from this folder or below; elsewhere set AUTHSVC_DATA_DIR)",
            pgdata,
        )
    elif attached:
        log.info("using the embedded PostgreSQL already running in %s", pgdata)
    else:
        log.warning("AUTHSVC_DATABASE_URL is not set: started the embedded PostgreSQL in %s", pgdata)
    return url, server
