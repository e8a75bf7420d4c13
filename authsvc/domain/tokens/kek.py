"""Envelope encryption of secrets at rest (TOTP secrets, private signing keys).

AES-256-GCM with a random 96-bit nonce; the key id is stored beside each
ciphertext so the key-encryption key can rotate. The associated data binds a
ciphertext to the row it belongs to, so a sealed secret copied into another
row does not open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16


def aad(kind: str, row_id: str) -> bytes:
    """The associated data that binds a sealed secret to its row."""
    return f"authsvc:{kind}:{row_id}".encode()


class KekError(Exception):
    """A ciphertext does not open: wrong key, unknown key id, or tampering."""


class Kek:
    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current key-encryption key must be among the keys")
        for kid, key in keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"key-encryption key {kid!r} must be {KEY_BYTES} bytes")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = current

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE_BYTES)
        return self.current, nonce + self._keys[self.current].encrypt(nonce, plaintext, aad)

    def open(self, kid: str, sealed: bytes, aad: bytes) -> bytes:
        aead = self._keys.get(kid)
        if aead is None:
            raise KekError(f"unknown key-encryption key {kid!r}")
        if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
            raise KekError("sealed secret is truncated")
        try:
            return aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise KekError("sealed secret does not open") from exc
