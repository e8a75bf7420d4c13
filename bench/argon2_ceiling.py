"""The argon2id rate with the configured parameters, one process per core:
what password logins cannot exceed on this machine."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import argon2

from authsvc.domain.passwords import Argon2Params


def _hash_for(params: Argon2Params, start_at: float, seconds: float) -> float:
    hasher = argon2.PasswordHasher(
        time_cost=params.time_cost, memory_cost=params.memory_kib, parallelism=params.parallelism,
        type=argon2.Type.ID,
    )  # fmt: skip
    hasher.hash("warm up")
    time.sleep(max(0.0, start_at - time.monotonic()))  # all cores start together
    count, start = 0, time.monotonic()
    while time.monotonic() < start + seconds:
        hasher.hash("a password of ordinary length")
        count += 1
    return count / (time.monotonic() - start)


def run(params: Argon2Params, seconds: float) -> tuple[float, int]:
    """Hashes per second on all cores, and the number of cores used."""
    cores = os.cpu_count() or 1
    with mp.get_context("spawn").Pool(cores) as pool:
        start_at = time.monotonic() + 2.0
        rates = pool.starmap(_hash_for, [(params, start_at, seconds)] * cores)
    return sum(rates), cores
