"""The argon2id rate with the configured parameters, one process per core:
what password logins cannot exceed on this machine.

Measured with authsvc's own hashing (``Passwords.hash``: libsodium), and with
argon2-cffi for reference (what authsvc hashed with before, and the usual
Python choice): the same hash, computed by slower code."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable

import argon2

from authsvc.domain.identity.passwords import Argon2Params, Passwords

AUTHSVC = "authsvc"  # libsodium, as authsvc hashes
REFERENCE = "argon2-cffi"


def _hasher(params: Argon2Params, which: str) -> Callable[[str], str]:
    if which == AUTHSVC:
        return Passwords(params, workers=1).hash
    return argon2.PasswordHasher(
        time_cost=params.time_cost, memory_cost=params.memory_kib, parallelism=params.parallelism,
        type=argon2.Type.ID,
    ).hash  # fmt: skip


def _hash_for(params: Argon2Params, which: str, start_at: float, seconds: float) -> float:
    hash_one = _hasher(params, which)
    hash_one("warm up")
    time.sleep(max(0.0, start_at - time.monotonic()))  # all cores start together
    count, start = 0, time.monotonic()
    while time.monotonic() < start + seconds:
        hash_one("a password of ordinary length")
        count += 1
    return count / (time.monotonic() - start)


def run(params: Argon2Params, seconds: float, which: str = AUTHSVC) -> tuple[float, int]:
    """Hashes per second on all cores, and the number of cores used."""
    cores = os.cpu_count() or 1
    with mp.get_context("spawn").Pool(cores) as pool:
        start_at = time.monotonic() + 2.0
        rates = pool.starmap(_hash_for, [(params, which, start_at, seconds)] * cores)
    return sum(rates), cores
