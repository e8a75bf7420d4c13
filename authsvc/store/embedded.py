"""An embedded PostgreSQL (pgserver) for running without a database URL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a PostgreSQL in ``data_dir/pg``; give its URL and a handle."""
    try:
        import pgserver
    except ImportError as exc:
        raise RuntimeError(
            "AUTHSVC_DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "pip install 'authsvc[embedded]' or set AUTHSVC_DATABASE_URL"
        ) from exc
    pgdata = (data_dir / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url: str = server.get_uri()
    log.warning("AUTHSVC_DATABASE_URL is not set: started an embedded PostgreSQL in %s", pgdata)
    return url, server
