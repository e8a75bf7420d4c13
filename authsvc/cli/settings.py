"""``authsvc config``: the effective configuration, secrets masked."""

from __future__ import annotations

import sys

from authsvc.config import ConfigError, Settings


def show(settings: Settings) -> int:
    """Every setting as this process reads it (value and where it came from),
    then whether ``authsvc serve`` would accept it. Masked: the KEK (key ids
    only) and the database URL's password."""
    width = max(len(name) for name, _, _ in settings.effective)
    for name, shown, source in sorted(settings.effective):
        print(f"{name:<{width}} = {shown:<40} # {source}")
    if not settings.database_url:
        print(f"# no AUTHSVC_DATABASE_URL: the embedded PostgreSQL in {settings.data_dir / 'pg'}")
    try:
        Settings.from_env(serving=True)
    except ConfigError as exc:
        print(f"authsvc: `authsvc serve` would refuse this: {exc}", file=sys.stderr)
        return 2
    return 0
