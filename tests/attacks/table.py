"""The forgery table: what an attacker can make from a real access token and
the published JWKS, without our private key, and the reason each must be
refused with. Shared by the server's Verify RPC test and the local verifier's.

Each case is a function of a :class:`Material` (a real token, the JWKS, a
second real token) that gives the token to present, plus what the presenter
asks for. The table is data; the tests that run it are small.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from authsvc_client import Reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def enc(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


@dataclass(frozen=True)
class Material:
    """What an attacker holds: a real token (EdDSA), another real token, the JWKS."""

    token: str
    other: str
    jwks: dict[str, Any]

    @property
    def parts(self) -> list[str]:
        return self.token.split(".")

    @property
    def header(self) -> dict[str, Any]:
        return dict(json.loads(unb64(self.parts[0])))

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(unb64(self.parts[1])))

    @property
    def signature(self) -> str:
        return self.parts[2]

    def public_x(self) -> bytes:
        jwk = next(k for k in self.jwks["keys"] if k["kid"] == self.header["kid"])
        return unb64(jwk["x"])

    def public_pem(self) -> bytes:
        key = ed25519.Ed25519PublicKey.from_public_bytes(self.public_x())
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_der(self) -> bytes:
        key = ed25519.Ed25519PublicKey.from_public_bytes(self.public_x())
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_jwk_json(self) -> bytes:
        jwk = next(k for k in self.jwks["keys"] if k["kid"] == self.header["kid"])
        return json.dumps(jwk).encode()

    # ways to assemble a token ------------------------------------------------

    def with_header(self, **changes: Any) -> str:
        """Header changed, payload and the original signature kept."""
        header = {**self.header, **changes}
        header = {k: v for k, v in header.items() if v is not DROP}
        return f"{enc(header)}.{self.parts[1]}.{self.signature}"

    def with_payload(self, **changes: Any) -> str:
        payload = {**self.payload, **changes}
        payload = {k: v for k, v in payload.items() if v is not DROP}
        return f"{self.parts[0]}.{enc(payload)}.{self.signature}"

    def hmac_signed(self, alg: str, secret: bytes) -> str:
        """Key confusion: HMAC with the public key as the shared secret."""
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        head = enc({**self.header, "alg": alg})
        body = enc({**self.payload, "scope": "admin"})
        mac = hmac.new(secret, f"{head}.{body}".encode(), digest).digest()
        return f"{head}.{body}.{b64(mac)}"

    def attacker_signed(self, **header_extra: Any) -> str:
        """Signed with the attacker's own Ed25519 key, named in the header."""
        key = ed25519.Ed25519PrivateKey.generate()
        x = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        extra = {k: (v(x) if callable(v) else v) for k, v in header_extra.items()}
        head = enc({**self.header, **extra})
        body = enc({**self.payload, "scope": "admin"})
        return f"{head}.{body}.{b64(key.sign(f'{head}.{body}'.encode()))}"

    def raw(self, header: bytes, payload: bytes | None = None, signature: str | None = None) -> str:
        body = b64(payload) if payload is not None else self.parts[1]
        return f"{b64(header)}.{body}.{self.signature if signature is None else signature}"


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()


@dataclass(frozen=True)
class Case:
    name: str
    forge: Callable[[Material], str]
    reason: Reason
    audience: str = "orders"
    scopes: tuple[str, ...] = ()
    #: Seconds the verifier's clock is ahead (replaying an old token).
    later: int = 0


def _flip(sig: str, index: int) -> str:
    raw = bytearray(unb64(sig))
    raw[index] ^= 0x01
    return b64(bytes(raw))


def _non_canonical(segment: str) -> str:
    """Same bytes, other spelling: set the unused low bits of the last char."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1])
    return segment[:-1] + alphabet[last | (1 if len(segment) % 4 == 3 else 3)]


def _es256_zero(m: Material) -> str:
    head = enc({**m.header, "alg": "ES256"})
    return f"{head}.{m.parts[1]}.{b64(bytes(64))}"


def _es256_key_confusion(m: Material) -> str:
    """A valid ES256 signature by the attacker's own P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    head = enc({**m.header, "alg": "ES256"})
    r, s = decode_dss_signature(key.sign(f"{head}.{m.parts[1]}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{head}.{m.parts[1]}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


M = Reason.MALFORMED
SIG = Reason.BAD_SIGNATURE
KEY = Reason.UNKNOWN_KEY
TYP = Reason.WRONG_TYPE

CASES: list[Case] = [
    # alg: none, in every spelling (RFC 8725 section 2.1)
    Case("alg none, no signature", lambda m: m.with_header(alg="none").rsplit(".", 1)[0] + ".", SIG),
    Case("alg none, signature kept", lambda m: m.with_header(alg="none"), SIG),
    Case("alg None", lambda m: m.with_header(alg="None").rsplit(".", 1)[0] + ".", SIG),
    Case("alg NONE", lambda m: m.with_header(alg="NONE").rsplit(".", 1)[0] + ".", SIG),
    Case("alg nOnE", lambda m: m.with_header(alg="nOnE").rsplit(".", 1)[0] + ".", SIG),
    Case("alg none without kid", lambda m: m.with_header(alg="none", kid=DROP).rsplit(".", 1)[0] + ".", M),
    Case("alg empty string", lambda m: m.with_header(alg=""), SIG),
    Case("alg missing", lambda m: m.with_header(alg=DROP), M),
    Case("alg as a list", lambda m: m.with_header(alg=["EdDSA"]), M),
    # HMAC with the public key as secret, in every encoding (key confusion)
    Case("HS256 with raw public key", lambda m: m.hmac_signed("HS256", m.public_x()), SIG),
    Case("HS256 with base64url x", lambda m: m.hmac_signed("HS256", b64(m.public_x()).encode()), SIG),
    Case("HS256 with the JWK as JSON", lambda m: m.hmac_signed("HS256", m.public_jwk_json()), SIG),
    Case("HS256 with PEM", lambda m: m.hmac_signed("HS256", m.public_pem()), SIG),
    Case("HS256 with DER", lambda m: m.hmac_signed("HS256", m.public_der()), SIG),
    Case("HS384 with PEM", lambda m: m.hmac_signed("HS384", m.public_pem()), SIG),
    Case("HS512 with the JWK as JSON", lambda m: m.hmac_signed("HS512", m.public_jwk_json()), SIG),
    # another algorithm than the key's
    Case("alg ES256, EdDSA signature", lambda m: m.with_header(alg="ES256"), SIG),
    Case("alg RS256", lambda m: m.with_header(alg="RS256"), SIG),
    Case("alg PS256", lambda m: m.with_header(alg="PS256"), SIG),
    Case("alg Ed25519 (not a JWS name)", lambda m: m.with_header(alg="Ed25519"), SIG),
    Case("alg eddsa lower case", lambda m: m.with_header(alg="eddsa"), SIG),
    Case("ES256 by the attacker's P-256 key", _es256_key_confusion, SIG),
    Case("ES256 all-zero signature", _es256_zero, SIG),
    # kid: a dictionary key and nothing else
    Case("kid missing", lambda m: m.with_header(kid=DROP), M),
    Case("kid unknown", lambda m: m.with_header(kid="attacker-key"), KEY),
    Case("kid path traversal", lambda m: m.with_header(kid="../../../../dev/null"), KEY),
    Case("kid SQL injection", lambda m: m.with_header(kid="x' OR '1'='1"), KEY),
    Case("kid shell injection", lambda m: m.with_header(kid="k; rm -rf /"), KEY),
    Case("kid URL", lambda m: m.with_header(kid="https://attacker.example/key.pem"), KEY),
    Case("kid empty", lambda m: m.with_header(kid=""), M),
    Case("kid number", lambda m: m.with_header(kid=1), M),
    Case("kid list", lambda m: m.with_header(kid=[m.header["kid"]]), M),
    Case("kid over 128 characters", lambda m: m.with_header(kid="k" * 129), M),
    Case("kid with NUL", lambda m: m.with_header(kid=m.header["kid"] + "\x00"), KEY),
    # key-bearing and extension headers (RFC 8725 3.10; RFC 7515 4.1.11)
    Case("embedded jwk of the attacker", lambda m: m.attacker_signed(jwk=lambda x: {"kty": "OKP", "crv": "Ed25519", "x": b64(x)}), M),
    Case("jku to the attacker", lambda m: m.attacker_signed(jku="https://attacker.example/jwks.json"), M),
    Case("x5u to the attacker", lambda m: m.attacker_signed(x5u="https://attacker.example/cert.pem"), M),
    Case("x5c of the attacker", lambda m: m.attacker_signed(x5c=["MIIBattacker"]), M),
    Case("crit exp", lambda m: m.with_header(crit=["exp"]), M),
    Case("crit b64 with b64 false", lambda m: m.with_header(crit=["b64"], b64=False), M),
    Case("b64 false", lambda m: m.with_header(b64=False), M),
    Case("zip DEF", lambda m: m.with_header(zip="DEF"), M),
    Case("cty JWT (nested)", lambda m: m.with_header(cty="JWT"), M),
    Case("unknown header member", lambda m: m.with_header(admin=True), M),
    # typ (RFC 9068 2.1, RFC 8725 3.11)
    Case("typ JWT (an ID token)", lambda m: m.with_header(typ="JWT"), TYP),
    Case("typ missing", lambda m: m.with_header(typ=DROP), TYP),
    Case("typ with a trailing space", lambda m: m.with_header(typ="at+jwt "), TYP),
    Case("typ as a number", lambda m: m.with_header(typ=1), TYP),
    # the payload changed under the original signature
    Case("sub changed", lambda m: m.with_payload(sub="admin"), SIG),
    Case("scope widened", lambda m: m.with_payload(scope="read write admin"), SIG),
    Case("exp extended", lambda m: m.with_payload(exp=m.payload["exp"] + 86400), SIG),
    Case("aud changed", lambda m: m.with_payload(aud="billing"), SIG),
    Case("exp as a string", lambda m: m.with_payload(exp=str(m.payload["exp"])), SIG),
    Case("aud as an object", lambda m: m.with_payload(aud={"orders": True}), SIG),
    Case("exp removed", lambda m: m.with_payload(exp=DROP), SIG),
    Case("iss removed", lambda m: m.with_payload(iss=DROP), SIG),
    Case("jti removed", lambda m: m.with_payload(jti=DROP), SIG),
    Case("aud removed", lambda m: m.with_payload(aud=DROP), SIG),
    Case("sid removed (escape session revocation)", lambda m: m.with_payload(sid=DROP), SIG),
    Case("extra claim admin", lambda m: m.with_payload(admin=True), SIG),
    Case("other token's payload, this signature", lambda m: f"{m.parts[0]}.{m.other.split('.')[1]}.{m.signature}", SIG),
    # the signature itself
    Case("signature stripped", lambda m: m.token.rsplit(".", 1)[0] + ".", SIG),
    Case("signature truncated by one byte", lambda m: f"{m.parts[0]}.{m.parts[1]}.{b64(unb64(m.signature)[:-1])}", SIG),
    Case("signature truncated to half", lambda m: f"{m.parts[0]}.{m.parts[1]}.{b64(unb64(m.signature)[:32])}", SIG),
    Case("signature first bit flipped", lambda m: f"{m.parts[0]}.{m.parts[1]}.{_flip(m.signature, 0)}", SIG),
    Case("signature last bit flipped", lambda m: f"{m.parts[0]}.{m.parts[1]}.{_flip(m.signature, -1)}", SIG),
    Case("signature of another token", lambda m: f"{m.parts[0]}.{m.parts[1]}.{m.other.split('.')[2]}", SIG),
    Case("signature doubled", lambda m: f"{m.parts[0]}.{m.parts[1]}.{b64(unb64(m.signature) * 2)}", SIG),
    Case("signature of zeros", lambda m: f"{m.parts[0]}.{m.parts[1]}.{b64(bytes(64))}", SIG),
    # encodings: one token, one spelling
    Case("padding on the header", lambda m: f"{m.parts[0]}==.{m.parts[1]}.{m.signature}", M),
    Case("padding on the signature", lambda m: f"{m.token}==", M),
    Case("standard base64 alphabet", lambda m: m.token.replace("-", "+").replace("_", "/") if ("-" in m.token or "_" in m.token) else m.token[:-1] + "+", M),
    Case("whitespace inside", lambda m: f"{m.parts[0]}. {m.parts[1]}.{m.signature}", M),
    Case("line break inside", lambda m: f"{m.parts[0]}.{m.parts[1]}\n.{m.signature}", M),
    Case("non-canonical trailing bits", lambda m: f"{m.parts[0]}.{m.parts[1]}.{_non_canonical(m.signature)}", M),
    Case("duplicate alg in the header", lambda m: m.raw(('{"alg":"none",' + json.dumps(m.header)[1:]).encode()), M),
    Case("duplicate sub in the payload", lambda m: m.raw(json.dumps(m.header).encode(), ('{"sub":"admin",' + json.dumps(m.payload)[1:]).encode()), SIG),
    Case("header not UTF-8", lambda m: m.raw(b'{"alg":"EdDSA","kid":"\xff"}'), M),
    Case("header not JSON", lambda m: m.raw(b"alg=EdDSA"), M),
    Case("header a JSON array", lambda m: m.raw(b'["EdDSA"]'), M),
    Case("header NaN", lambda m: m.raw(b'{"alg":NaN}'), M),
    Case("non-ASCII in the payload segment", lambda m: f"{m.parts[0]}.{m.parts[1][:5]}\u00e9{m.parts[1][5:]}.{m.signature}", M),
    # shape
    Case("two segments", lambda m: f"{m.parts[0]}.{m.parts[1]}", M),
    Case("four segments", lambda m: f"{m.token}.{m.signature}", M),
    Case("five segments (JWE-shaped garbage)", lambda m: ".".join([m.parts[0], "", "AAAA", m.parts[1], m.signature]), M),
    Case("only dots", lambda m: "..", M),
    Case("not a token", lambda m: "Bearer " + m.token, M),
    Case("a refresh token", lambda m: "AbCdEfGhIjKlMnOpQrStUv.s3cr3t-s3cr3t-s3cr3t", M),
    # real tokens where they do not belong
    Case("replayed after expiry", lambda m: m.token, Reason.EXPIRED, later=300 + 31),
    Case("presented to another audience", lambda m: m.token, Reason.WRONG_AUDIENCE, audience="billing"),
    Case("presented for a scope it lacks", lambda m: m.token, Reason.MISSING_SCOPE, scopes=("admin",)),
]

#: Over-size tokens are refused before parsing: locally MALFORMED, and by the
#: Verify RPC as INVALID_ARGUMENT (an oversize request, not a token verdict).
OVERSIZE = Case("over 8 KiB", lambda m: m.with_payload(pad="x" * 9000), M)
