"""argon2id password hashing (RFC 9106) with OWASP parameters."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_PASSWORD_BYTES = 1024
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane."""

    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1


class Passwords:
    """Hash and check passwords. Both calls are CPU-bound; run them off the event loop."""

    def __init__(self, params: Argon2Params = Argon2Params(), workers: int | None = None) -> None:
        # argon2-cffi releases the GIL, so a pool sized to the cores hashes in
        # parallel while the event loop keeps serving.
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="argon2")
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        # Checked against when the user does not exist, so that an unknown user
        # costs the same time as a wrong password (no user enumeration).
        self._dummy = self._hasher.hash("not a password: equalises timing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def check(self, stored_hash: str | None, password: str) -> tuple[bool, bool]:
        """Give (matches, needs_rehash). A missing or empty hash checks the
        dummy (same cost) and never matches."""
        try:
            self._hasher.verify(stored_hash or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
        if not stored_hash:
            return False, False
        return True, self._hasher.check_needs_rehash(stored_hash)


    async def hash_async(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.hash, password)

    async def check_async(self, stored_hash: str | None, password: str) -> tuple[bool, bool]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.check, stored_hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def check_new_password(password: str) -> str | None:
    """Give a reason a new password is unacceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must have at least {MIN_PASSWORD_LENGTH} characters"
    try:
        encoded = password.encode("utf-8")  # strict: argon2 hashes these bytes
    except UnicodeEncodeError:
        return "password must be valid Unicode text"
    if len(encoded) > MAX_PASSWORD_BYTES:
        return f"password must have at most {MAX_PASSWORD_BYTES} bytes"
    return None
