"""PostgreSQL persistence: the only place that imports asyncpg."""
