"""Nested JWTs: a signed access token encrypted to its audience (RFC 7519
section 11.2, RFC 7516). Only the strong algorithms are accepted:
ECDH-ES+A256KW or RSA-OAEP-256 to wrap the key, A256GCM for the content.
RSA1_5, "dir", PBES2, CBC modes and compression are refused before any
cryptography runs. Needs jwcrypto (``pip install authsvc-client[jwe]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._jose import JoseFormatError, b64url_decode, json_object

KEY_ALGORITHMS = ("ECDH-ES+A256KW", "RSA-OAEP-256")
CONTENT_ENCRYPTION = "A256GCM"
_ALLOWED_HEADER = frozenset({"alg", "enc", "cty", "kid", "epk", "typ"})


class DecryptionError(ValueError):
    """Not a token we can or may decrypt."""


def is_encrypted(token: str) -> bool:
    """A compact JWE has five segments; a JWS three."""
    return token.count(".") == 4


def protected_header(token: str) -> dict[str, Any]:
    """The JWE header, checked strictly before any decryption is attempted."""
    try:
        header = json_object(b64url_decode(token.split(".", 1)[0]))
    except JoseFormatError as exc:
        raise DecryptionError("malformed JWE header") from exc
    if not header.keys() <= _ALLOWED_HEADER:
        raise DecryptionError("unexpected JWE header member")
    if header.get("alg") not in KEY_ALGORITHMS or header.get("enc") != CONTENT_ENCRYPTION:
        raise DecryptionError("JWE algorithm not allowed")
    if header.get("cty") != "JWT" or not isinstance(header.get("kid"), str):
        raise DecryptionError("not a nested JWT for a known key")
    return header


def decrypt_nested(token: str, keys: Mapping[str, Any]) -> str:
    """The inner JWS of a nested JWT, decrypted with ``keys[kid]`` (jwcrypto
    JWK objects holding private keys). Raises :class:`DecryptionError`."""
    header = protected_header(token)
    key = keys.get(header["kid"])
    if key is None:
        raise DecryptionError("no decryption key for this token")
    from jwcrypto import jwe
    from jwcrypto.common import JWException

    envelope = jwe.JWE(algs=[*KEY_ALGORITHMS, CONTENT_ENCRYPTION])
    try:
        envelope.deserialize(token, key=key)
        inner = envelope.payload
    except (JWException, ValueError, TypeError) as exc:
        raise DecryptionError("JWE does not decrypt") from exc
    if not isinstance(inner, bytes) or not inner.isascii():
        raise DecryptionError("JWE payload is not a compact JWS")
    return inner.decode("ascii")
