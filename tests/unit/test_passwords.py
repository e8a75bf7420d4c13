"""argon2id password hashing: round trip, rehash on upgrade, equal cost for
unknown users, and the limits on a new password."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import argon2
import pytest

from authsvc.domain.identity.passwords import (
    MAX_PASSWORD_BYTES,
    MIN_PASSWORD_LENGTH,
    Argon2Params,
    Passwords,
    check_new_password,
)

# Small parameters wherever the time taken is not the point.
FAST = Argon2Params(time_cost=1, memory_kib=64, parallelism=1)
PASSWORD = "correct horse battery staple"
DUMMY_PASSWORD = "not a password: equalises timing"  # the dummy hash's; public: it is in the source


@pytest.fixture(scope="module")
def fast() -> Iterator[Passwords]:
    p = Passwords(FAST, workers=2)
    yield p
    p.close()


def test_default_parameters_are_owasp_minimums() -> None:
    assert Argon2Params() == Argon2Params(time_cost=2, memory_kib=19456, parallelism=1)


def test_round_trip(fast: Passwords) -> None:
    stored = fast.hash(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert "m=64,t=1,p=1" in stored
    assert PASSWORD not in stored
    assert fast.check(stored, PASSWORD) == (True, False)


def test_salted(fast: Passwords) -> None:
    first, second = fast.hash(PASSWORD), fast.hash(PASSWORD)
    assert first != second
    assert fast.check(first, PASSWORD) == fast.check(second, PASSWORD) == (True, False)


@pytest.mark.parametrize(
    "attempt",
    ["wrong password", PASSWORD.upper(), PASSWORD + " ", PASSWORD[:-1], "", DUMMY_PASSWORD],
)
def test_wrong_password(fast: Passwords, attempt: str) -> None:
    assert fast.check(fast.hash(PASSWORD), attempt) == (False, False)


@pytest.mark.parametrize("attempt", [PASSWORD, "", DUMMY_PASSWORD])
def test_unknown_user_never_matches(fast: Passwords, attempt: str) -> None:
    # Not even the dummy hash's own password opens the door.
    assert fast.check(None, attempt) == (False, False)


@pytest.mark.parametrize("attempt", [PASSWORD, "", DUMMY_PASSWORD])
def test_an_empty_stored_hash_never_matches(fast: Passwords, attempt: str) -> None:
    # An empty hash is how an operator might disable password login for a user.
    assert fast.check("", attempt) == (False, False)


@pytest.mark.parametrize(
    "stored", ["!", "not a hash", "$argon2id$v=19$m=64,t=1,p=1$garbage", "$2b$12$abcdefghijklmnopqrstuv"]
)
def test_a_corrupt_stored_hash_fails_closed(fast: Passwords, stored: str) -> None:
    assert fast.check(stored, PASSWORD) == (False, False)
    assert fast.check(stored, DUMMY_PASSWORD) == (False, False)


def test_hashes_stored_by_argon2_cffi_keep_working(fast: Passwords) -> None:
    # Earlier versions hashed with argon2-cffi; libsodium reads the same PHC strings.
    reference = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=argon2.Type.ID)
    stored = reference.hash(PASSWORD)
    assert fast.check(stored, PASSWORD) == (True, False)
    assert fast.check(stored, "wrong password") == (False, False)
    # And the other way: what we store now, argon2-cffi checks.
    assert reference.verify(fast.hash(PASSWORD), PASSWORD)


@pytest.mark.parametrize(("hash_len", "salt_len"), [(64, 16), (32, 48)])
def test_long_argon2id_hashes_keep_working(fast: Passwords, hash_len: int, salt_len: int) -> None:
    # libsodium reads at most 127 characters; longer ones (imported, or from
    # another set-up) go to argon2-cffi, and ask to be replaced by ours.
    long = argon2.PasswordHasher(
        time_cost=1, memory_cost=64, parallelism=1, hash_len=hash_len, salt_len=salt_len, type=argon2.Type.ID
    )
    stored = long.hash(PASSWORD)
    assert len(stored) > 127
    assert fast.check(stored, PASSWORD) == (True, True)
    assert fast.check(stored, "wrong password") == (False, False)


def test_more_than_one_lane_hashes_with_argon2_cffi() -> None:
    # libsodium handles one lane only; argon2-cffi hashes and checks the rest.
    lanes = Passwords(Argon2Params(time_cost=1, memory_kib=64, parallelism=2), workers=1)
    try:
        stored = lanes.hash(PASSWORD)
        assert "m=64,t=1,p=2" in stored
        assert lanes.check(stored, PASSWORD) == (True, False)
        assert lanes.check(stored, "wrong password") == (False, False)
    finally:
        lanes.close()


@pytest.mark.parametrize("kind", [argon2.Type.I, argon2.Type.D])
def test_other_argon2_variants_are_checked_and_upgraded(fast: Passwords, kind: argon2.Type) -> None:
    # We store argon2id only; an imported argon2i/argon2d hash still works,
    # once, and asks to be replaced by an argon2id one.
    stored = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=kind).hash(PASSWORD)
    assert fast.check(stored, PASSWORD) == (True, True)
    assert fast.check(stored, "wrong password") == (False, False)


def test_a_password_that_is_not_unicode_never_matches(fast: Passwords) -> None:
    assert fast.check(fast.hash(PASSWORD), PASSWORD + "\udcff") == (False, False)
    assert fast.check(fast.hash(PASSWORD).replace("$argon2id", "$argon2id\u00e9"), PASSWORD) == (False, False)


def test_unicode_passwords(fast: Passwords) -> None:
    password = "pässwörd-密码-🔑"
    stored = fast.hash(password)
    assert fast.check(stored, password) == (True, False)
    # No normalisation: a differently composed spelling is another password.
    assert fast.check(stored, password.replace("ä", "a\u0308")) == (False, False)


def test_needs_rehash_when_parameters_change(fast: Passwords) -> None:
    stored = fast.hash(PASSWORD)
    stronger = Passwords(Argon2Params(time_cost=2, memory_kib=128, parallelism=1), workers=1)
    try:
        assert stronger.check(stored, PASSWORD) == (True, True)
        assert stronger.check(stored, "wrong password") == (False, False)
        assert stronger.check(stronger.hash(PASSWORD), PASSWORD) == (True, False)
    finally:
        stronger.close()
    for params in (
        Argon2Params(time_cost=1, memory_kib=128, parallelism=1),
        Argon2Params(time_cost=1, memory_kib=64, parallelism=2),
    ):
        other = Passwords(params, workers=1)
        try:
            assert other.check(stored, PASSWORD) == (True, True), params
        finally:
            other.close()


async def test_async_calls_match_the_sync_ones(fast: Passwords) -> None:
    stored = await fast.hash_async(PASSWORD)
    assert await fast.check_async(stored, PASSWORD) == (True, False)
    assert await fast.check_async(stored, "wrong password") == (False, False)
    assert await fast.check_async(None, PASSWORD) == (False, False)


def _mean_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm up: first use allocates argon2's memory
    total = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        total += time.perf_counter() - start
    return total / runs


def test_unknown_user_costs_a_real_verify() -> None:
    """No user enumeration by timing: checking a missing hash runs argon2 too.

    With the real (OWASP) parameters a check takes tens of milliseconds, so a
    skipped verify would take under 1% of that; 30% leaves ample room for noise.
    """
    real = Passwords()
    try:
        stored = real.hash(PASSWORD)
        known_wrong = _mean_seconds(lambda: real.check(stored, "wrong password"), runs=4)
        known_right = _mean_seconds(lambda: real.check(stored, PASSWORD), runs=2)
        unknown = _mean_seconds(lambda: real.check(None, "wrong password"), runs=4)
    finally:
        real.close()
    reference = min(known_wrong, known_right)
    assert unknown >= 0.3 * reference, f"unknown user {unknown * 1000:.1f} ms vs known {reference * 1000:.1f} ms"


def test_the_dummy_hash_uses_the_configured_parameters() -> None:
    # Otherwise unknown users would cost the default, not the configured, time.
    heavy = Argon2Params(time_cost=3, memory_kib=256, parallelism=1)
    p = Passwords(heavy, workers=1)
    try:
        assert "m=256,t=3,p=1" in p._dummy
    finally:
        p.close()


# --- new passwords ----------------------------------------------------------


def test_new_password_limits() -> None:
    assert MIN_PASSWORD_LENGTH == 8
    assert MAX_PASSWORD_BYTES == 1024
    assert check_new_password("x" * 8) is None
    assert check_new_password("x" * 1024) is None
    short = check_new_password("x" * 7)
    assert short is not None and "8" in short
    assert check_new_password("") is not None
    long = check_new_password("x" * 1025)
    assert long is not None and "1024" in long


def test_new_password_length_counts_characters_and_bytes() -> None:
    # The minimum is in characters: eight 4-byte characters are eight.
    assert check_new_password("🔑" * 8) is None
    assert check_new_password("🔑" * 7) is not None
    # The maximum is in UTF-8 bytes: 512 two-byte characters fit, 513 do not.
    assert check_new_password("é" * 512) is None
    assert check_new_password("é" * 513) is not None
    assert check_new_password("🔑" * 256) is None
    assert check_new_password("🔑" * 257) is not None


def test_reasons_never_echo_the_password() -> None:
    for password in ("secret1", "s" * 2000):
        reason = check_new_password(password)
        assert reason is not None and password not in reason


def test_a_password_that_cannot_be_hashed_is_refused_up_front(fast: Passwords) -> None:
    password = "abcdefgh\udcff"  # what surrogateescape makes of a stray non-UTF-8 byte
    # The hash would fail (argon2 hashes UTF-8 bytes, and this has none)...
    with pytest.raises(UnicodeEncodeError):
        fast.hash(password)
    # ...so the check refuses it first, with a reason that does not echo it.
    reason = check_new_password(password)
    assert reason == "password must be valid Unicode text"
    assert "abcdefgh" not in reason
