"""Signing keys: generation with jwcrypto, sealing under the KEK, and the
in-memory keyring that signs and publishes (RFC 7517, RFC 7638 key ids)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk

from authsvc.domain.models import StoredKey
from authsvc.domain.tokens.kek import Kek, aad
from authsvc_client import KeySet
from authsvc_client._jose import PrivateKey
from authsvc_client._keys import parse_jwk

_GENERATE: dict[str, dict[str, Any]] = {
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
    "ES256": {"kty": "EC", "crv": "P-256"},
    "PS256": {"kty": "RSA", "size": 3072},
    "RS256": {"kty": "RSA", "size": 3072},
}


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey


def _aad(kid: str) -> bytes:
    return aad("signing-key", kid)


def generate_key(alg: str, kek: Kek, now: float, state: str = "active") -> StoredKey:
    """A new key pair; its ``kid`` is the RFC 7638 thumbprint of the public key."""
    if alg not in _GENERATE:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    key = jwk.JWK.generate(**_GENERATE[alg])
    kid = key.thumbprint()
    public = key.export_public(as_dict=True)
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    der = key.get_op_key("sign").private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    kek_id, sealed = kek.seal(der, _aad(kid))
    return StoredKey(
        kid=kid,
        alg=alg,
        state=state,
        public_jwk=json.dumps(public, sort_keys=True),
        kek_id=kek_id,
        private_sealed=sealed,
        created_at=now,
        activated_at=now if state == "active" else None,
    )


def open_key(stored: StoredKey, kek: Kek) -> SigningKey:
    der = kek.open(stored.kek_id, stored.private_sealed, _aad(stored.kid))
    private = serialization.load_der_private_key(der, password=None)
    return SigningKey(kid=stored.kid, alg=stored.alg, private=private)  # type: ignore[arg-type]


def is_published(key: StoredKey, now: float, retire_after: float) -> bool:
    """The next key is published before it signs (so every verifier has it
    when the first token arrives); a retired key stays until every token it
    signed has expired; a revoked key never."""
    if key.state in ("next", "active"):
        return True
    if key.state == "retired":
        return key.retired_at is not None and now < key.retired_at + retire_after
    return False


class Keyring:
    """The key that signs now, and the keys that verify (published in the JWKS)."""

    #: When the signing key became active (epoch seconds), for its age on /metrics.
    active_since = 0.0

    def __init__(self, signer: SigningKey, published: list[StoredKey]) -> None:
        self.signer = signer
        self._published = published
        entries = [json.loads(k.public_jwk) for k in published]
        self.verification_keys = KeySet([parse_jwk(e) for e in entries])
        self.jwks_json = json.dumps({"keys": entries}, sort_keys=True)
        self.kids = tuple(k.kid for k in published)

    def without(self, kids: frozenset[str]) -> Keyring:
        """This keyring with ``kids`` withdrawn: neither verified nor published.
        The signer stays until the keys are reloaded (a withdrawn signer's
        tokens are then refused everywhere, which fails safe)."""
        if not kids & set(self.kids):
            return self
        return Keyring(self.signer, [k for k in self._published if k.kid not in kids])

    @classmethod
    def load(cls, stored: list[StoredKey], kek: Kek, now: float, retire_after: float) -> Keyring | None:
        active = [k for k in stored if k.state == "active"]
        if not active:
            return None
        ring = cls(open_key(active[0], kek), [k for k in stored if is_published(k, now, retire_after)])
        ring.active_since = active[0].activated_at or active[0].created_at
        return ring
