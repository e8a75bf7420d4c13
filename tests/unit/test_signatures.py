"""Ed25519 checks go to libsodium (VerificationKey.check); everything else,
and the signer, to OpenSSL through cryptography. The two must agree on every
signature a holder of the key can make, and libsodium must refuse whatever
OpenSSL refuses."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authsvc_client._jose import sign, verify
from authsvc_client._keys import VerificationKey

L = 2**252 + 27742317777372353535851937790883648493  # the order of the Ed25519 base point


@pytest.fixture
def ed_key() -> tuple[ed25519.Ed25519PrivateKey, VerificationKey]:
    private = ed25519.Ed25519PrivateKey.generate()
    return private, VerificationKey("k", "EdDSA", private.public_key())


def both(key: VerificationKey, message: bytes, signature: bytes) -> tuple[bool, bool]:
    """(libsodium, OpenSSL)"""
    return key.check(message, signature), verify("EdDSA", key.key, message, signature)


def test_libsodium_is_used_for_ed25519_only(ed_key) -> None:
    assert len(ed_key[1].raw) == 32
    p256 = ec.generate_private_key(ec.SECP256R1())
    assert VerificationKey("e", "ES256", p256.public_key()).raw == b""
    message = b"header.payload"
    assert VerificationKey("e", "ES256", p256.public_key()).check(message, sign("ES256", p256, message))


@pytest.mark.parametrize("size", [0, 1, 200, 1000, 8192])
def test_valid_signatures_agree(ed_key, size: int) -> None:
    private, key = ed_key
    for _ in range(20):
        message = os.urandom(size)
        assert both(key, message, private.sign(message)) == (True, True)


def test_tampering_is_refused_by_both(ed_key) -> None:
    private, key = ed_key
    message = b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0"
    signature = private.sign(message)
    for i in range(len(signature)):
        flipped = bytearray(signature)
        flipped[i] ^= 0x01
        assert both(key, message, bytes(flipped)) == (False, False), i
    assert both(key, message + b"x", signature) == (False, False)
    assert both(key, message[:-1], signature) == (False, False)
    other = ed25519.Ed25519PrivateKey.generate()
    assert both(key, message, other.sign(message)) == (False, False)


@pytest.mark.parametrize("cut", [0, 1, 32, 63, 65, 96])
def test_a_signature_of_the_wrong_size_is_refused(ed_key, cut: int) -> None:
    """libsodium reads one buffer, signature || message: a signature cut
    short, with the message taking its last bytes (or one that took the
    message's first bytes), makes the same buffer as a valid pair."""
    private, key = ed_key
    message = b"m" * 100
    good = private.sign(message)
    joined = good + message
    assert both(key, joined[cut:], joined[:cut]) == (False, False)
    assert key.check(message, good) is True


def test_non_canonical_s_is_refused_by_both(ed_key) -> None:
    """S + L verifies the same equation; RFC 8032 requires S < L (malleability)."""
    private, key = ed_key
    message = b"payload"
    signature = private.sign(message)
    s = int.from_bytes(signature[32:], "little") + L
    assert s < 2**256
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert both(key, message, malleated) == (False, False)


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rsa_signatures_must_be_as_long_as_the_modulus(alg: str) -> None:
    # One signature in 256 starts with a zero byte; without it the number is
    # the same, and OpenSSL's PSS check took it (a second spelling of one token).
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = VerificationKey("r", alg, private.public_key())
    for i in range(10_000):
        message = b"header.payload-%d" % i
        signature = sign(alg, private, message)
        if signature[0] == 0:
            break
    else:
        pytest.fail("no signature with a leading zero byte in 10,000")
    assert key.check(message, signature)
    assert not key.check(message, signature[1:])
    assert not key.check(message, b"\0" + signature)
