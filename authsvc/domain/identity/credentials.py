"""Bearer secrets we hand out and store only as hashes.

Every one carries at least 80 random bits (most 256), so a single SHA-256 is
the right hash: a slow hash protects guessable passwords, not random keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_ID_BYTES = 16
_SECRET_BYTES = 32
_RECOVERY_BYTES = 10  # 80 bits: 16 base32 characters


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def matches(secret: str, stored: bytes) -> bool:
    return hmac.compare_digest(digest(secret), stored)


def new_refresh_token() -> tuple[str, str, str]:
    """Give (token, id, secret): an opaque ``<id>.<secret>`` with 256 secret bits."""
    token_id = secrets.token_urlsafe(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{token_id}.{secret}", token_id, secret


def split_refresh_token(token: str) -> tuple[str, str] | None:
    token_id, dot, secret = token.partition(".")
    if not dot or not token_id or not secret or len(token) > 256 or "." in secret:
        return None
    return token_id, secret


def new_client_secret() -> str:
    return secrets.token_urlsafe(_SECRET_BYTES)


def new_client_id() -> str:
    return "c_" + secrets.token_hex(8)


def new_challenge_id() -> str:
    return secrets.token_urlsafe(_SECRET_BYTES)


def new_recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(_RECOVERY_BYTES)).decode("ascii").lower()
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def normalise_recovery_code(code: str) -> str:
    """Users retype codes: ignore case, spaces and dashes, then regroup."""
    raw = "".join(c for c in code.lower() if c.isalnum())
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))
