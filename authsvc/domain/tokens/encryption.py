"""Encrypting access tokens (nested JWT: sign, then encrypt; RFC 7519 11.2).

A token for one audience that registered an encryption key is encrypted to
that key, so the service decrypts it locally. Any other token, with
encryption on, is encrypted to authsvc's own key: opaque to everyone, read
only by Verify. Only ECDH-ES+A256KW and RSA-OAEP-256 with A256GCM exist here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from jwcrypto import jwe, jwk

from authsvc.domain.models import StoredKey
from authsvc.domain.tokens.kek import Kek, aad
from authsvc_client._jwe import CONTENT_ENCRYPTION, KEY_ALGORITHMS

OWN_ALG = "ECDH-ES+A256KW"
_CURVES = ("P-256", "P-384", "P-521", "X25519")
MIN_RSA_BITS = 2048


class BadEncryptionKey(ValueError):
    """A registered key we refuse: private, weak, or not for encryption."""


@dataclass(frozen=True, slots=True)
class AudienceKey:
    audience: str
    kid: str
    alg: str
    public_jwk: str
    #: Only nested tokens for this audience: Verify refuses bare signed ones
    #: (NOT_ENCRYPTED), and its tokens are encrypted even with encryption off.
    require_encrypted: bool = False


def generate_own_key(kek: Kek, now: float) -> StoredKey:
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    kid = key.thumbprint()
    public = key.export_public(as_dict=True)
    public.update({"kid": kid, "alg": OWN_ALG, "use": "enc"})
    der = key.get_op_key("unwrapKey").private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kek_id, sealed = kek.seal(der, aad("encryption-key", kid))
    return StoredKey(kid, OWN_ALG, "active", json.dumps(public, sort_keys=True), kek_id, sealed, now, now)


def parse_audience_key(audience: str, text: str, *, require_encrypted: bool = False) -> AudienceKey:
    """Check a service's public encryption JWK before we encrypt to it."""
    try:
        data = json.loads(text)
        key = jwk.JWK(**data)
    except (ValueError, TypeError) as exc:
        raise BadEncryptionKey("not a JWK") from exc
    if key.has_private or "k" in data:
        raise BadEncryptionKey("a private or symmetric key: register the public key only")
    alg = data.get("alg")
    if alg not in KEY_ALGORITHMS:
        raise BadEncryptionKey(f"alg must be one of {', '.join(KEY_ALGORITHMS)}")
    if data.get("use", "enc") != "enc":
        raise BadEncryptionKey("use must be enc")
    if alg == "RSA-OAEP-256":
        if data.get("kty") != "RSA" or key.get_op_key("wrapKey").key_size < MIN_RSA_BITS:
            raise BadEncryptionKey(f"RSA-OAEP-256 needs an RSA key of {MIN_RSA_BITS} bits or more")
    elif data.get("kty") not in ("EC", "OKP") or data.get("crv") not in _CURVES:
        raise BadEncryptionKey(f"ECDH-ES+A256KW needs a key on {', '.join(_CURVES)}")
    kid = data.get("kid") or key.thumbprint()
    public = {**key.export_public(as_dict=True), "kid": kid, "alg": alg, "use": "enc"}
    return AudienceKey(audience, kid, alg, json.dumps(public, sort_keys=True), require_encrypted)


class Encryptor:
    def __init__(self, own: StoredKey, kek: Kek, audience_keys: Sequence[AudienceKey]) -> None:
        der = kek.open(own.kek_id, own.private_sealed, aad("encryption-key", own.kid))
        private = serialization.load_der_private_key(der, password=None)
        self._own = jwk.JWK.from_pyca(private)
        self._own_kid = own.kid
        self._own_public = jwk.JWK(**json.loads(own.public_jwk))
        self._audiences = {a.audience: (a.kid, a.alg, jwk.JWK(**json.loads(a.public_jwk))) for a in audience_keys}
        #: What Verify may decrypt: tokens encrypted to authsvc itself.
        self.decryption_keys: dict[str, Any] = {own.kid: self._own}
        #: Audiences that accept nested tokens only.
        self.required_audiences = frozenset(a.audience for a in audience_keys if a.require_encrypted)

    def must_encrypt(self, audiences: Sequence[str]) -> bool:
        """True when any of ``audiences`` accepts nested tokens only."""
        return any(a in self.required_audiences for a in audiences)

    def recipient(self, audiences: Sequence[str]) -> tuple[str, str, Any]:
        if len(audiences) == 1 and audiences[0] in self._audiences:
            return self._audiences[audiences[0]]
        return self._own_kid, OWN_ALG, self._own_public

    def encrypt(self, signed: str, audiences: Sequence[str]) -> str:
        kid, alg, key = self.recipient(audiences)
        protected = {"alg": alg, "enc": CONTENT_ENCRYPTION, "cty": "JWT", "kid": kid}
        envelope = jwe.JWE(signed.encode("ascii"), protected=protected)
        envelope.add_recipient(key)
        return str(envelope.serialize(compact=True))
