"""argon2id password hashing (RFC 9106) with OWASP parameters.

libsodium (through PyNaCl) computes the hashes: its argon2id uses the CPU's
vector units and takes about 70% of argon2-cffi's time for the same hash on
the machine this was measured on. Both write and read the same PHC strings
("$argon2id$v=19$m=...,t=...,p=...$salt$hash"), so hashes stored by either
keep working. libsodium hashes with one lane only; for a configured
parallelism above 1, argon2-cffi hashes (libsodium still checks them: it
computes the lanes one after another, the same work)."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import argon2
import nacl.pwhash.argon2id as sodium_argon2id
from argon2.exceptions import InvalidHashError, VerificationError
from nacl.exceptions import CryptoError

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
        # Both libraries release the GIL, so a pool sized to the cores hashes in
        # parallel while the event loop keeps serving.
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="argon2")
        self._params = params
        # argon2-cffi: reads the parameters of a stored hash (needs_rehash), and
        # hashes when more than one lane is configured.
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        # Checked against when the user does not exist, so that an unknown user
        # costs the same time as a wrong password (no user enumeration).
        self._dummy = self.hash("not a password: equalises timing")

    def hash(self, password: str) -> str:
        p = self._params
        if p.parallelism != 1:
            return self._hasher.hash(password)
        secret = password.encode("utf-8")  # strict, as argon2-cffi: a lone surrogate is refused
        return sodium_argon2id.str(secret, opslimit=p.time_cost, memlimit=p.memory_kib * 1024).decode("ascii")

    def check(self, stored_hash: str | None, password: str) -> tuple[bool, bool]:
        """Give (matches, needs_rehash). A missing or empty hash checks the
        dummy (same cost) and never matches."""
        try:
            secret = password.encode("utf-8")
        except UnicodeEncodeError:  # no one's password (never from the wire: protobuf strings are UTF-8)
            secret, stored_hash = b"", None
        if not _verify(stored_hash or self._dummy, secret, self._hasher) or not stored_hash:
            return False, False
        try:
            return True, self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:  # matched, but its parameters are unreadable: store ours
            return True, True

    async def hash_async(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.hash, password)

    async def check_async(self, stored_hash: str | None, password: str) -> tuple[bool, bool]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.check, stored_hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _verify(stored_hash: str, secret: bytes, reference: argon2.PasswordHasher) -> bool:
    try:
        if stored_hash.startswith("$argon2id$"):
            return bool(sodium_argon2id.verify(stored_hash.encode("ascii"), secret))
        # Not ours (we store argon2id only), perhaps imported: argon2-cffi reads
        # every variant, and check() asks for a rehash to argon2id.
        return reference.verify(stored_hash, secret)
    except (CryptoError, UnicodeEncodeError, VerificationError, InvalidHashError):  # a mismatch, or not a hash
        return False


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
