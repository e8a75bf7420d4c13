"""Public keys from a JWKS (RFC 7517), each pinned to one algorithm."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from ._jose import MIN_RSA_BITS, SIGNING_ALGORITHMS, JoseFormatError, PublicKey, b64url_decode, json_object, verify

MAX_KID_LENGTH = 128
ED25519_SIGNATURE_BYTES = 64


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One published key: its ``kid``, the one algorithm it verifies, the key."""

    kid: str
    alg: str
    key: PublicKey
    #: The 32 raw bytes of an Ed25519 key, for libsodium (see :meth:`check`).
    raw: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.alg == "EdDSA" and isinstance(self.key, ed25519.Ed25519PublicKey):
            object.__setattr__(self, "raw", self.key.public_bytes_raw())

    def check(self, signing_input: bytes, signature: bytes) -> bool:
        """True only for a valid signature by this key under its algorithm.

        Ed25519 goes to libsodium, which checks a signature in about 60% of
        OpenSSL's time here (38 against 62 us) and is the stricter of the two
        (it also refuses small-order points and non-canonical encodings)."""
        if self.raw:
            if len(signature) != ED25519_SIGNATURE_BYTES:
                return False  # else the split of signature || message would shift
            try:
                crypto_sign_open(signature + signing_input, self.raw)
            except BadSignatureError:
                return False
            return True
        return verify(self.alg, self.key, signing_input, signature)


class KeySet(Mapping[str, VerificationKey]):
    """An immutable ``kid`` -> key map. A ``kid`` is only ever a dictionary key."""

    __slots__ = ("_keys",)

    def __init__(self, keys: list[VerificationKey] | tuple[VerificationKey, ...] = ()) -> None:
        self._keys = {k.kid: k for k in keys}

    def __getitem__(self, kid: str) -> VerificationKey:
        return self._keys[kid]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def without(self, kids: frozenset[str] | set[str]) -> KeySet:
        """This set less ``kids`` (withdrawn keys); itself when none is in it."""
        if not kids & self._keys.keys():
            return self
        return KeySet([k for kid, k in self._keys.items() if kid not in kids])

    @classmethod
    def from_jwks(cls, jwks: str | bytes | Mapping[str, Any]) -> KeySet:
        """Parse a JWKS. Keys we cannot use for signature checks (wrong ``use``,
        an algorithm we do not publish, a key that does not fit its ``alg``,
        RSA under 2048 bits, any private member) raise ``ValueError``."""
        if isinstance(jwks, str):
            jwks = jwks.encode("utf-8")
        doc = json_object(jwks) if isinstance(jwks, bytes) else dict(jwks)
        entries = doc.get("keys")
        if not isinstance(entries, list):
            raise ValueError("JWKS has no keys list")
        keys = [parse_jwk(e) for e in entries if isinstance(e, dict) and e.get("use", "sig") == "sig"]
        return cls(keys)


def _int(member: Any) -> int:
    if not isinstance(member, str):
        raise ValueError("bad key member")
    return int.from_bytes(b64url_decode(member), "big")


def parse_jwk(jwk: Mapping[str, Any]) -> VerificationKey:
    """Build a verification key from one public JWK that names its ``alg``."""
    kid, alg, kty = jwk.get("kid"), jwk.get("alg"), jwk.get("kty")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise ValueError("JWK needs a kid")
    if alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"JWK {kid}: unsupported alg")
    if any(m in jwk for m in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise ValueError(f"JWK {kid}: private member in a public key set")
    try:
        key: PublicKey
        if alg == "EdDSA" and kty == "OKP" and jwk.get("crv") == "Ed25519":
            key = ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk.get("x"))))
        elif alg == "ES256" and kty == "EC" and jwk.get("crv") == "P-256":
            numbers = ec.EllipticCurvePublicNumbers(_int(jwk.get("x")), _int(jwk.get("y")), ec.SECP256R1())
            key = numbers.public_key()
        elif alg in ("RS256", "PS256") and kty == "RSA":
            key = rsa.RSAPublicNumbers(_int(jwk.get("e")), _int(jwk.get("n"))).public_key()
            if key.key_size < MIN_RSA_BITS:
                raise ValueError(f"JWK {kid}: RSA key under {MIN_RSA_BITS} bits")
        else:
            raise ValueError(f"JWK {kid}: key type does not fit {alg}")
    except JoseFormatError as exc:
        raise ValueError(f"JWK {kid}: bad encoding") from exc
    return VerificationKey(kid=kid, alg=str(alg), key=key)
