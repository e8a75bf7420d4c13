"""The JOSE primitives both sides share: strict base64url and JSON, and one
signer/verifier per algorithm we publish (RFC 7518 section 3).

The algorithm always comes from the key (RFC 8725 section 3.1), so every
function here takes it from a key object, never from a token header.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

#: The signing algorithms authsvc can publish. Nothing else is ever accepted.
SIGNING_ALGORITHMS = ("EdDSA", "ES256", "PS256", "RS256")
MIN_RSA_BITS = 2048

_B64URL_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
# bytes.translate with a table: str.translate with a dict costs a look-up per character.
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_P256_BYTES = 32
#: The order of P-256's group (SEC 2, section 2.4.2). (r, s) and (r, n - s) are
#: both valid ECDSA signatures of one message; only the low one is canonical.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class JoseFormatError(ValueError):
    """A part of a token is not well-formed base64url or JSON."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url (RFC 7515 section 2), refusing anything else:
    padding, other alphabets, whitespace, and non-canonical trailing bits, so
    that one token has exactly one spelling."""
    rest = len(text) % 4
    # binascii's strict mode below refuses every character outside the
    # standard alphabet (and misplaced padding); what it would let through is
    # the standard alphabet's own "+" and "/", and padding of our own. These
    # three scans cost a fraction of a regular expression on a hot path.
    if rest == 1 or "+" in text or "/" in text or "=" in text:
        raise JoseFormatError("bad base64url")
    try:
        # The last character of a 2- or 3-character tail carries 4 or 2 unused
        # bits; a canonical encoder leaves them zero.
        if rest and _B64URL_VALUE[text[-1]] & (0x0F if rest == 2 else 0x03):
            raise JoseFormatError("non-canonical base64url")
        data = text.encode("ascii").translate(_TO_STANDARD) + b"=" * (-rest % 4)
        return binascii.a2b_base64(data, strict_mode=True)
    except (KeyError, ValueError) as exc:  # not the alphabet, not ASCII; binascii.Error is a ValueError
        if isinstance(exc, JoseFormatError):
            raise
        raise JoseFormatError("bad base64url") from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # RFC 7515 section 5.2 lets a parser reject duplicates; a second
        # "alg" or "exp" read differently by two parsers is an attack.
        raise JoseFormatError("duplicate member")
    return obj


def _no_constants(name: str) -> Any:
    raise JoseFormatError(f"non-standard JSON constant {name}")


# One decoder for every call: json.loads with hooks builds a new one each time.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def json_object(data: bytes) -> dict[str, Any]:
    """Parse a JSON object from UTF-8 bytes strictly (RFC 8259, I-JSON)."""
    try:
        text = data.decode("utf-8")
        obj = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, JoseFormatError):
            raise
        raise JoseFormatError("not a JSON object") from exc
    if not isinstance(obj, dict):
        raise JoseFormatError("not a JSON object")
    return obj


def json_bytes(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(alg: str, key: PrivateKey, signing_input: bytes) -> bytes:
    """Sign with the algorithm the key was registered for."""
    if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(signing_input)
    if alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        s = min(s, _P256_ORDER - s)  # low-S: the one spelling verify() accepts
        return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
    if alg == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if alg == "PS256" and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(signing_input, _pss(), hashes.SHA256())
    raise ValueError(f"key does not fit algorithm {alg}")


def verify(alg: str, key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """True only for a valid signature by ``key`` under ``alg``."""
    try:
        if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signing_input)
            return True
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * _P256_BYTES:
                return False
            r = int.from_bytes(signature[:_P256_BYTES], "big")
            s = int.from_bytes(signature[_P256_BYTES:], "big")
            if r == 0 or s == 0:  # the "psychic signature" (CVE-2022-21449)
                return False
            if s > _P256_ORDER // 2:
                # High-S: the same signature spelled a second way. Refused, so
                # one token has exactly one encoding (a replay cache or a
                # token-keyed cache cannot be sidestepped by re-spelling it).
                return False
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
            return True
        if alg in ("RS256", "PS256") and isinstance(key, rsa.RSAPublicKey):
            # RFC 8017 8.1.2 and 8.2.2, step 1: exactly as long as the modulus.
            # OpenSSL's PSS check takes a signature whose leading zero byte was
            # dropped: one token would then have two spellings.
            if len(signature) != (key.key_size + 7) // 8:
                return False
            scheme = padding.PKCS1v15() if alg == "RS256" else _pss()
            key.verify(signature, signing_input, scheme, hashes.SHA256())
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def _pss() -> padding.PSS:
    # RFC 7518 section 3.5: MGF1 with SHA-256 and a salt as long as the hash.
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
