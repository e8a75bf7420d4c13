"""Plain-Python rules of authsvc: no grpc and no asyncpg imports here."""
