"""argon2id password hashing (RFC 9106) with OWASP parameters.

libsodium (through PyNaCl) computes the hashes: its argon2id uses the CPU's
vector units and takes about 70% of argon2-cffi's time for the same hash on
the machine this was measured on. Both write and read the same PHC strings
("$argon2id$v=19$m=...,t=...,p=...$salt$hash"), so hashes stored by either
keep working. libsodium handles one lane only: with a configured parallelism
above 1, argon2-cffi hashes and checks (its threads compute the lanes at
once), as it does for other argon2 variants and longer salts or outputs.
Those accounts take argon2-cffi's time to check, about 1.4 times the dummy
check's for an unknown user, until their next login rehashes them."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import argon2
import nacl.pwhash.argon2id as sodium_argon2id
from argon2.exceptions import InvalidHashError, VerificationError
from nacl.exceptions import InvalidkeyError
from nacl.exceptions import ValueError as SodiumValueError

from authsvc import telemetry

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
        with telemetry.span("password.hash", algorithm="argon2id"):
            return await asyncio.get_running_loop().run_in_executor(self._pool, self.hash, password)

    async def check_async(self, stored_hash: str | None, password: str) -> tuple[bool, bool]:
        with telemetry.span("password.verify", algorithm="argon2id"):
            return await asyncio.get_running_loop().run_in_executor(self._pool, self.check, stored_hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


#: What libsodium checks: argon2id of the current version with one lane, and
#: at most 127 characters (its limit; longer salts or outputs go to argon2-cffi).
_SODIUM_PREFIX = "$argon2id$v=19$"
_SODIUM_MAX_LENGTH = 127


def _verify(stored_hash: str, secret: bytes, reference: argon2.PasswordHasher) -> bool:
    if (
        stored_hash.startswith(_SODIUM_PREFIX)
        and len(stored_hash) <= _SODIUM_MAX_LENGTH
        and ",p=1$" in stored_hash
        and stored_hash.isascii()
    ):
        try:
            return bool(sodium_argon2id.verify(stored_hash.encode("ascii"), secret))
        except (InvalidkeyError, SodiumValueError):  # a mismatch, or a string it cannot read
            return False
    # Not the kind we store by default: more lanes (argon2-cffi hashes them on
    # threads), another variant or a longer salt or output (perhaps imported).
    try:
        return reference.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError, UnicodeEncodeError):  # a mismatch, or not a hash at all
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
