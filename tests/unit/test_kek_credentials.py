"""Secrets at rest: AES-256-GCM envelope sealing under a rotating KEK, and the
bearer secrets stored only as hashes (refresh tokens, recovery codes)."""

from __future__ import annotations

import hashlib
import re
import string

import pytest

from authsvc.domain.identity import credentials
from authsvc.domain.tokens.kek import KEY_BYTES, Kek, KekError

OLD = bytes(range(32))
NEW = bytes(range(100, 132))
AAD = b"authsvc:totp:user-1"
SECRET = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def kek() -> Kek:
    return Kek({"k1": OLD}, "k1")


# --- Kek ------------------------------------------------------------------------


def test_seal_open_round_trip(kek: Kek) -> None:
    kid, sealed = kek.seal(SECRET, AAD)
    assert kid == "k1"
    assert SECRET not in sealed
    assert len(sealed) == 12 + len(SECRET) + 16  # nonce, ciphertext, tag
    assert kek.open(kid, sealed, AAD) == SECRET


@pytest.mark.parametrize("plaintext", [b"", b"x", bytes(range(256)) * 20])
def test_round_trip_of_any_length(kek: Kek, plaintext: bytes) -> None:
    assert kek.open(*kek.seal(plaintext, AAD), AAD) == plaintext


def test_each_seal_uses_a_fresh_nonce(kek: Kek) -> None:
    sealed = {kek.seal(SECRET, AAD)[1] for _ in range(20)}
    assert len(sealed) == 20
    assert len({s[:12] for s in sealed}) == 20


@pytest.mark.parametrize("aad", [b"", b"authsvc:totp:user-2", AAD + b"\0", AAD.upper()])
def test_wrong_associated_data_does_not_open(kek: Kek, aad: bytes) -> None:
    kid, sealed = kek.seal(SECRET, AAD)
    with pytest.raises(KekError):
        kek.open(kid, sealed, aad)


def test_tampering_is_detected(kek: Kek) -> None:
    kid, sealed = kek.seal(SECRET, AAD)
    for i in range(len(sealed)):  # nonce, ciphertext and tag alike
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(KekError):
            kek.open(kid, bytes(tampered), AAD)
    with pytest.raises(KekError):
        kek.open(kid, sealed + b"\0", AAD)


@pytest.mark.parametrize("cut", [1, 16, 17, len(SECRET) + 16 - 8])
def test_truncation_is_detected(kek: Kek, cut: int) -> None:
    kid, sealed = kek.seal(SECRET, AAD)
    with pytest.raises(KekError):
        kek.open(kid, sealed[:-cut], AAD)


@pytest.mark.parametrize("length", [0, 1, 7])
def test_a_stub_too_short_for_a_nonce_is_a_kek_error(kek: Kek, length: int) -> None:
    with pytest.raises(KekError):
        kek.open("k1", bytes(length), AAD)


@pytest.mark.parametrize("length", [8, 11, 12, 27])
def test_a_stub_too_short_for_a_tag_is_a_kek_error(kek: Kek, length: int) -> None:
    with pytest.raises(KekError):
        kek.open("k1", bytes(length), AAD)


def test_unknown_key_id(kek: Kek) -> None:
    _, sealed = kek.seal(SECRET, AAD)
    with pytest.raises(KekError, match="unknown"):
        kek.open("k2", sealed, AAD)
    with pytest.raises(KekError):
        kek.open("", sealed, AAD)


def test_another_key_does_not_open(kek: Kek) -> None:
    kid, sealed = kek.seal(SECRET, AAD)
    impostor = Kek({"k1": NEW}, "k1")  # same id, other key
    with pytest.raises(KekError):
        impostor.open(kid, sealed, AAD)


def test_rotation() -> None:
    old = Kek({"k1": OLD}, "k1")
    old_kid, old_sealed = old.seal(SECRET, AAD)

    rotated = Kek({"k2": NEW, "k1": OLD}, "k2")
    assert rotated.current == "k2"
    assert rotated.open(old_kid, old_sealed, AAD) == SECRET  # what the old key sealed still opens
    new_kid, new_sealed = rotated.seal(SECRET, AAD)  # new secrets go under the new key
    assert new_kid == "k2"
    assert rotated.open(new_kid, new_sealed, AAD) == SECRET
    with pytest.raises(KekError):
        old.open(new_kid, new_sealed, AAD)
    # Once every secret is resealed, the old key can go.
    retired = Kek({"k2": NEW}, "k2")
    assert retired.open(new_kid, new_sealed, AAD) == SECRET
    with pytest.raises(KekError):
        retired.open(old_kid, old_sealed, AAD)


def test_construction_is_checked() -> None:
    assert KEY_BYTES == 32
    with pytest.raises(ValueError, match="current"):
        Kek({"k1": OLD}, "k2")
    with pytest.raises(ValueError, match="32 bytes"):
        Kek({"k1": bytes(16)}, "k1")
    with pytest.raises(ValueError, match="32 bytes"):
        Kek({"k1": OLD, "k2": bytes(31)}, "k1")
    with pytest.raises(ValueError):
        Kek({}, "")


# --- refresh tokens and other bearer secrets --------------------------------------

_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


def test_refresh_token_format() -> None:
    token, token_id, secret = credentials.new_refresh_token()
    assert token == f"{token_id}.{secret}"
    assert _URLSAFE.fullmatch(token_id) and len(token_id) == 22  # 128 bits
    assert _URLSAFE.fullmatch(secret) and len(secret) == 43  # 256 bits
    assert credentials.split_refresh_token(token) == (token_id, secret)


def test_refresh_tokens_are_unique() -> None:
    tokens = [credentials.new_refresh_token() for _ in range(50)]
    assert len({t[1] for t in tokens}) == 50
    assert len({t[2] for t in tokens}) == 50


@pytest.mark.parametrize(
    "token",
    ["", "nodot", ".secret", "id.", ".", "id.sec.ret", "a..b", "id." + "s" * 254, "i" * 200 + "." + "s" * 56],
)
def test_split_refuses_what_we_never_issue(token: str) -> None:
    assert credentials.split_refresh_token(token) is None


def test_split_accepts_the_longest_allowed() -> None:
    token = "i" * 100 + "." + "s" * 155
    assert len(token) == 256
    assert credentials.split_refresh_token(token) == ("i" * 100, "s" * 155)


def test_client_ids_and_secrets() -> None:
    client_id = credentials.new_client_id()
    assert re.fullmatch(r"c_[0-9a-f]{16}", client_id)
    secret = credentials.new_client_secret()
    assert _URLSAFE.fullmatch(secret) and len(secret) == 43
    assert credentials.new_client_secret() != secret
    challenge = credentials.new_challenge_id()
    assert _URLSAFE.fullmatch(challenge) and len(challenge) == 43


# --- recovery codes ------------------------------------------------------------------


def test_recovery_code_format() -> None:
    codes = {credentials.new_recovery_code() for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        assert re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code), code  # 16 base32 characters: 80 bits


@pytest.mark.parametrize(
    "typed",
    ["abcd-efgh-ijkl-mnop", "ABCD-EFGH-IJKL-MNOP", "abcdefghijklmnop", "abcd efgh ijkl mnop", " Abcd-Efgh ijklMNOP \n",
     "abcd--efgh--ijkl--mnop", "a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p"],
)
def test_recovery_code_normalisation(typed: str) -> None:
    assert credentials.normalise_recovery_code(typed) == "abcd-efgh-ijkl-mnop"


def test_a_generated_code_survives_retyping() -> None:
    code = credentials.new_recovery_code()
    assert credentials.normalise_recovery_code(code) == code
    retyped = code.upper().replace("-", " ")
    assert credentials.normalise_recovery_code(retyped) == code
    assert credentials.matches(credentials.normalise_recovery_code(retyped), credentials.digest(code))


def test_normalisation_keeps_a_wrong_code_wrong() -> None:
    assert credentials.normalise_recovery_code("abcd-efgh-ijkl-mnoq") != "abcd-efgh-ijkl-mnop"
    assert credentials.normalise_recovery_code("abcd-efgh-ijkl") == "abcd-efgh-ijkl"
    assert credentials.normalise_recovery_code("") == ""
    assert credentials.normalise_recovery_code("----") == ""
    punct = string.punctuation.replace("-", "")
    assert credentials.normalise_recovery_code(f"abcd{punct}efgh") == "abcd-efgh"


# --- digest and matches ----------------------------------------------------------------


def test_digest_is_sha256_of_utf8() -> None:
    assert credentials.digest("secret") == hashlib.sha256(b"secret").digest()
    assert credentials.digest("sécret") == hashlib.sha256("sécret".encode()).digest()
    assert len(credentials.digest("")) == 32


def test_matches() -> None:
    _, _, secret = credentials.new_refresh_token()
    stored = credentials.digest(secret)
    assert secret.encode() not in stored
    assert credentials.matches(secret, stored)
    assert not credentials.matches(secret[:-1], stored)
    assert not credentials.matches(secret + "x", stored)
    assert not credentials.matches(secret.upper(), stored)
    assert not credentials.matches("", stored)
    assert not credentials.matches(secret, b"")
    assert not credentials.matches(secret, stored[:-1])


def test_digest_handles_what_a_client_may_send() -> None:
    # A lone surrogate must hash (and simply not match), never raise.
    assert not credentials.matches("\udcff", credentials.digest("x"))
