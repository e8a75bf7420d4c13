"""Access tokens: minted by authsvc, accepted or refused by the shared rules.

Every key algorithm authsvc can publish is exercised. Forged tokens are signed
properly by a published key wherever possible, so that each refusal is caused
by the one thing the test changed and the exact Reason can be asserted.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from authsvc.domain.models import StoredKey
from authsvc.domain.tokens.kek import Kek
from authsvc.domain.tokens.mint import Grant, mint_access_token
from authsvc.domain.tokens.signing_keys import Keyring, SigningKey, generate_key, open_key
from authsvc_client import (
    DEFAULT_LEEWAY_SECONDS,
    MAX_TOKEN_LENGTH,
    SIGNING_ALGORITHMS,
    AccessClaims,
    Reason,
    Requirements,
    TokenRejected,
    verify_access_token,
)
from authsvc_client._jose import b64url_decode, b64url_encode, json_bytes, sign
from authsvc_client._verify import read_access_token

KEK = Kek({"k": bytes(32)}, "k")
NOW = 1_700_000_000.0
TTL = 300
ISSUER = "https://authsvc.test"
AUDIENCE = "orders"
REQ = Requirements(audience=AUDIENCE)
ALGS = ("EdDSA", "ES256", "PS256", "RS256")
THUMBPRINT = b64url_encode(hashlib.sha256(b"client certificate DER").digest())

GRANT = Grant(
    subject="user-42",
    audiences=(AUDIENCE,),
    scopes=("read", "write"),
    client_id="c_web",
    auth_time=NOW - 60,
    amr=("pwd", "otp"),
    acr="aal2",
    session_id="sess-1",
)

_URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_every_publishable_algorithm_is_covered() -> None:
    assert set(ALGS) == set(SIGNING_ALGORITHMS)


@pytest.fixture(scope="module")
def stored_keys() -> dict[str, StoredKey]:
    """One key per algorithm for the whole module: RSA-3072 generation is slow."""
    return {alg: generate_key(alg, KEK, NOW) for alg in ALGS}


@pytest.fixture(scope="module")
def signing_keys(stored_keys: dict[str, StoredKey]) -> dict[str, SigningKey]:
    return {alg: open_key(stored, KEK) for alg, stored in stored_keys.items()}


@dataclass
class Ctx:
    """One algorithm's signer, with a keyring that publishes every algorithm's key."""

    alg: str
    key: SigningKey
    keyring: Keyring
    others: dict[str, SigningKey]

    @property
    def keys(self) -> Mapping[str, Any]:
        return self.keyring.verification_keys

    def mint(self, grant: Grant = GRANT, *, now: float = NOW, ttl: int = TTL) -> str:
        token, _, _ = mint_access_token(grant, key=self.key, issuer=ISSUER, now=now, ttl=ttl)
        return token

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": self.alg, "kid": self.key.kid, "typ": "at+jwt"}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not _DROP}

    def forge(
        self,
        header: Mapping[str, Any] | bytes | str | None = None,
        payload: Mapping[str, Any] | bytes | str | None = None,
        key: SigningKey | None = None,
    ) -> str:
        """A token whose segments are exactly as given (a str is used verbatim
        as the base64url segment, bytes are encoded), signed by ``key``."""
        key = key or self.key
        h = _segment(self.header() if header is None else header)
        p = _segment(claims() if payload is None else payload)
        signing_input = f"{h}.{p}"
        signature = sign(key.alg, key.private, signing_input.encode("utf-8"))
        return f"{signing_input}.{b64url_encode(signature)}"

    def verify(
        self,
        token: str,
        *,
        now: float = NOW,
        requirements: Requirements = REQ,
        leeway: int = DEFAULT_LEEWAY_SECONDS,
        issuer: str = ISSUER,
        is_revoked: Callable[[AccessClaims], bool] | None = None,
    ) -> AccessClaims:
        return verify_access_token(
            token,
            keys=self.keys,
            issuer=issuer,
            requirements=requirements,
            now=now,
            leeway=leeway,
            is_revoked=is_revoked,
        )

    def rejects(self, token: str, reason: Reason, **kwargs: Any) -> None:
        with pytest.raises(TokenRejected) as info:
            self.verify(token, **kwargs)
        assert info.value.reason is reason, f"{info.value.reason} instead of {reason}"


_DROP: Any = object()


def _segment(part: Mapping[str, Any] | bytes | str) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, bytes):
        return b64url_encode(part)
    return b64url_encode(json_bytes(dict(part)))


def claims(**changes: Any) -> dict[str, Any]:
    """The claims authsvc would mint at NOW; a change to ``_DROP`` removes a claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-42",
        "aud": AUDIENCE,
        "exp": int(NOW) + TTL,
        "iat": int(NOW),
        "nbf": int(NOW),
        "jti": "jti-fixed-for-forgery",
        "client_id": "c_web",
        "scope": "read write",
        "auth_time": int(NOW) - 60,
        "amr": ["pwd", "otp"],
        "acr": "aal2",
        "sid": "sess-1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


def segments(token: str) -> list[str]:
    parts = token.split(".")
    assert len(parts) == 3
    return parts


def with_bad_signature(token: str) -> str:
    h, p, s = segments(token)
    signature = b64url_decode(s)
    return f"{h}.{p}.{b64url_encode(bytes([signature[0] ^ 1]) + signature[1:])}"


def decode_segment(segment: str) -> dict[str, Any]:
    decoded = json.loads(b64url_decode(segment))
    assert isinstance(decoded, dict)
    return decoded


@pytest.fixture(params=ALGS)
def ctx(request: pytest.FixtureRequest, stored_keys: dict[str, StoredKey], signing_keys: dict[str, SigningKey]) -> Ctx:
    alg: str = request.param
    keyring = Keyring(signing_keys[alg], list(stored_keys.values()))
    others = {a: k for a, k in signing_keys.items() if a != alg}
    return Ctx(alg=alg, key=signing_keys[alg], keyring=keyring, others=others)


@pytest.fixture(scope="module")
def unpublished_keys() -> dict[str, SigningKey]:
    """Keys of the fast algorithms that no keyring publishes."""
    return {alg: open_key(generate_key(alg, KEK, NOW), KEK) for alg in ("EdDSA", "ES256")}


# --- accepted --------------------------------------------------------------


def test_minted_token_is_accepted_with_every_claim(ctx: Ctx) -> None:
    token, jti, exp = mint_access_token(GRANT, key=ctx.key, issuer=ISSUER, now=NOW + 0.7, ttl=TTL)
    got = ctx.verify(token)
    assert got.iss == ISSUER
    assert got.sub == "user-42"
    assert got.aud == (AUDIENCE,)
    assert got.iat == int(NOW)
    assert got.nbf == int(NOW)
    assert got.exp == exp == int(NOW) + TTL
    assert got.jti == jti
    assert len(jti) >= 22  # 128 random bits
    assert got.client_id == "c_web"
    assert got.scope == ("read", "write")
    assert got.sid == "sess-1"
    assert got.auth_time == int(NOW) - 60
    assert got.amr == ("pwd", "otp")
    assert got.acr == "aal2"
    assert got.cnf_x5t_s256 == ""
    assert "cnf" not in got.raw
    header = decode_segment(segments(token)[0])
    assert header == {"alg": ctx.alg, "kid": ctx.key.kid, "typ": "at+jwt"}


def test_claims_without_raw_are_the_same_claims(ctx: Ctx) -> None:
    """The server caches claims with ``keep_raw=False``: nothing but ``raw`` differs."""
    token, _, _ = mint_access_token(GRANT, key=ctx.key, issuer=ISSUER, now=NOW, ttl=TTL)
    full = read_access_token(token, ctx.keys)
    lean = read_access_token(token, ctx.keys, keep_raw=False)
    assert lean == full  # raw is not compared
    assert dataclasses.replace(lean, raw=full.raw) == full and full.raw["sub"] == "user-42"
    assert dict(lean.raw) == {}
    with pytest.raises(TypeError):
        lean.raw["sub"] = "admin"  # type: ignore[index]  # one shared empty mapping, read-only


def test_each_token_has_its_own_jti(ctx: Ctx) -> None:
    jtis = {mint_access_token(GRANT, key=ctx.key, issuer=ISSUER, now=NOW, ttl=TTL)[1] for _ in range(5)}
    assert len(jtis) == 5


def test_several_audiences_and_a_bound_certificate(ctx: Ctx) -> None:
    grant = dataclasses.replace(GRANT, audiences=("orders", "billing"), cert_thumbprint=THUMBPRINT, session_id="")
    token = ctx.mint(grant)
    payload = decode_segment(segments(token)[1])
    assert payload["aud"] == ["orders", "billing"]
    assert payload["cnf"] == {"x5t#S256": THUMBPRINT}
    assert "sid" not in payload
    got = ctx.verify(token, requirements=Requirements(audience="billing", cert_thumbprint=THUMBPRINT))
    assert got.aud == ("orders", "billing")
    assert got.cnf_x5t_s256 == THUMBPRINT
    assert got.sid == ""


def test_a_key_in_the_set_that_does_not_sign_now_still_verifies(ctx: Ctx) -> None:
    # Rotation: tokens signed by a published key that is not the signer stay valid.
    for other in ctx.others.values():
        assert ctx.verify(ctx.forge(ctx.header(alg=other.alg, kid=other.kid), key=other)).sub == "user-42"


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
def test_typ_compares_case_insensitively(ctx: Ctx, typ: str) -> None:
    ctx.verify(ctx.forge(ctx.header(typ=typ)))


def test_optional_claims_may_be_absent(ctx: Ctx) -> None:
    token = ctx.forge(payload=claims(nbf=_DROP, client_id=_DROP, scope=_DROP, sid=_DROP, amr=_DROP, acr=_DROP))
    got = ctx.verify(token)
    assert (got.nbf, got.client_id, got.scope, got.sid, got.amr, got.acr) == (0, "", (), "", (), "")


def test_fractional_numeric_dates_are_accepted(ctx: Ctx) -> None:
    got = ctx.verify(ctx.forge(payload=claims(exp=NOW + 10.5, iat=NOW - 0.5)))
    assert got.exp == int(NOW) + 10


# --- time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leeway", "slack"),
    [(0, 0), (DEFAULT_LEEWAY_SECONDS, DEFAULT_LEEWAY_SECONDS), (120, 120), (300, 300), (10_000, 300), (-50, 0)],
)
def test_expiry_with_leeway(ctx: Ctx, leeway: int, slack: int) -> None:
    """Just inside the (capped, non-negative) leeway is accepted; just outside is expired."""
    token = ctx.mint()
    exp = int(NOW) + TTL
    ctx.verify(token, now=exp + slack, leeway=leeway)
    ctx.rejects(token, Reason.EXPIRED, now=exp + slack + 0.001, leeway=leeway)
    ctx.rejects(token, Reason.EXPIRED, now=exp + slack + 1, leeway=leeway)


def test_default_leeway_is_30_seconds(ctx: Ctx) -> None:
    token = ctx.mint()
    exp = int(NOW) + TTL
    assert DEFAULT_LEEWAY_SECONDS == 30
    ctx.verify(token, now=exp + 30)
    ctx.rejects(token, Reason.EXPIRED, now=exp + 31)


@pytest.mark.parametrize(("leeway", "slack"), [(0, 0), (30, 30), (10_000, 300)])
def test_minted_in_the_future(ctx: Ctx, leeway: int, slack: int) -> None:
    token = ctx.mint(now=NOW)
    ctx.verify(token, now=NOW - slack, leeway=leeway)
    ctx.rejects(token, Reason.NOT_YET_VALID, now=NOW - slack - 1, leeway=leeway)


def test_nbf_in_the_future(ctx: Ctx) -> None:
    token = ctx.forge(payload=claims(nbf=int(NOW) + 100))
    ctx.rejects(token, Reason.NOT_YET_VALID, now=NOW, leeway=30)
    ctx.verify(token, now=NOW + 70, leeway=30)


def test_iat_in_the_future(ctx: Ctx) -> None:
    token = ctx.forge(payload=claims(iat=int(NOW) + 100, nbf=_DROP))
    ctx.rejects(token, Reason.NOT_YET_VALID, now=NOW, leeway=30)
    ctx.verify(token, now=NOW + 70, leeway=30)


# --- issuer, audience, scope, binding, auth age, revocation ---------------


def test_wrong_issuer(ctx: Ctx) -> None:
    token = ctx.mint()
    ctx.rejects(token, Reason.WRONG_ISSUER, issuer="https://evil.test")
    ctx.rejects(token, Reason.WRONG_ISSUER, issuer=ISSUER + "/")
    ctx.rejects(ctx.forge(payload=claims(iss="https://evil.test")), Reason.WRONG_ISSUER)


def test_wrong_audience(ctx: Ctx) -> None:
    token = ctx.mint()
    ctx.rejects(token, Reason.WRONG_AUDIENCE, requirements=Requirements(audience="billing"))
    ctx.rejects(token, Reason.WRONG_AUDIENCE, requirements=Requirements(audience="order"))
    ctx.rejects(ctx.forge(payload=claims(aud=[])), Reason.WRONG_AUDIENCE)
    ctx.rejects(ctx.forge(payload=claims(aud=["billing", "ORDERS"])), Reason.WRONG_AUDIENCE)


def test_an_audience_is_required(ctx: Ctx) -> None:
    with pytest.raises(ValueError):
        ctx.verify(ctx.mint(), requirements=Requirements(audience=""))


@pytest.mark.parametrize(
    ("required", "ok"),
    [((), True), (("read",), True), (("write", "read"), True), (("admin",), False), (("read", "admin"), False),
     (("rea",), False), (("read write",), False)],
)
def test_scopes(ctx: Ctx, required: tuple[str, ...], ok: bool) -> None:
    token = ctx.mint()
    requirements = Requirements(audience=AUDIENCE, scopes=required)
    if ok:
        ctx.verify(token, requirements=requirements)
    else:
        ctx.rejects(token, Reason.MISSING_SCOPE, requirements=requirements)


def test_bound_token_needs_the_same_certificate(ctx: Ctx) -> None:
    token = ctx.mint(dataclasses.replace(GRANT, cert_thumbprint=THUMBPRINT))
    ctx.verify(token, requirements=Requirements(audience=AUDIENCE, cert_thumbprint=THUMBPRINT))
    other = b64url_encode(hashlib.sha256(b"another certificate").digest())
    ctx.rejects(token, Reason.CERT_MISMATCH, requirements=Requirements(audience=AUDIENCE, cert_thumbprint=other))
    ctx.rejects(token, Reason.CERT_MISMATCH)  # presented without any certificate


@pytest.mark.parametrize("presented", ["", THUMBPRINT, "anything"])
def test_unbound_token_accepts_any_presenter(ctx: Ctx, presented: str) -> None:
    ctx.verify(ctx.mint(), requirements=Requirements(audience=AUDIENCE, cert_thumbprint=presented))


def test_max_auth_age(ctx: Ctx) -> None:
    token = ctx.mint(dataclasses.replace(GRANT, auth_time=NOW - 600))
    ctx.verify(token, requirements=Requirements(audience=AUDIENCE, max_auth_age=0))  # no limit
    ctx.verify(token, requirements=Requirements(audience=AUDIENCE, max_auth_age=600))
    ctx.rejects(token, Reason.AUTH_TOO_OLD, requirements=Requirements(audience=AUDIENCE, max_auth_age=599))
    no_auth_time = ctx.forge(payload=claims(auth_time=_DROP))
    ctx.verify(no_auth_time)
    # Unknown auth time is too old for any limit, even one longer than the epoch.
    for limit in (10**6, 2**40):
        ctx.rejects(no_auth_time, Reason.AUTH_TOO_OLD, requirements=Requirements(audience=AUDIENCE, max_auth_age=limit))


def test_revocation_callback(ctx: Ctx) -> None:
    token, jti, _ = mint_access_token(GRANT, key=ctx.key, issuer=ISSUER, now=NOW, ttl=TTL)
    seen: list[AccessClaims] = []

    def revoked(c: AccessClaims) -> bool:
        seen.append(c)
        return c.jti == jti

    ctx.rejects(token, Reason.REVOKED, is_revoked=revoked)
    assert [c.jti for c in seen] == [jti]
    assert seen[0].sid == "sess-1"
    assert ctx.verify(ctx.mint(), is_revoked=revoked).jti != jti

    # The callback is only consulted for a token that passed every other rule.
    seen.clear()
    ctx.rejects(token, Reason.EXPIRED, now=NOW + TTL + 3600, is_revoked=revoked)
    ctx.rejects(with_bad_signature(token), Reason.BAD_SIGNATURE, is_revoked=revoked)
    assert seen == []


# --- keys and algorithms ---------------------------------------------------


def test_unknown_kid(ctx: Ctx, unpublished_keys: dict[str, SigningKey]) -> None:
    stranger = unpublished_keys["EdDSA"]
    ctx.rejects(ctx.forge(ctx.header(alg="EdDSA", kid=stranger.kid), key=stranger), Reason.UNKNOWN_KEY)
    ctx.rejects(ctx.forge(ctx.header(kid=ctx.key.kid + "x")), Reason.UNKNOWN_KEY)
    # An empty key set knows no kid at all.
    with pytest.raises(TokenRejected) as info:
        verify_access_token(ctx.mint(), keys={}, issuer=ISSUER, requirements=REQ, now=NOW)
    assert info.value.reason is Reason.UNKNOWN_KEY


@pytest.mark.parametrize("kid", [_DROP, "", 7, None, ["k"], "k" * 129])
def test_missing_or_malformed_kid(ctx: Ctx, kid: Any) -> None:
    ctx.rejects(ctx.forge(ctx.header(kid=kid)), Reason.MALFORMED)


def test_alg_in_the_header_must_be_the_keys(ctx: Ctx) -> None:
    for other_alg, other in ctx.others.items():
        # The header names another algorithm but our kid, signed by our key...
        ctx.rejects(ctx.forge(ctx.header(alg=other_alg)), Reason.BAD_SIGNATURE)
        # ...or signed by a key of the other algorithm that an attacker holds.
        ctx.rejects(ctx.forge(ctx.header(alg=other_alg), key=other), Reason.BAD_SIGNATURE)
        # Our alg and kid, signed by another key.
        ctx.rejects(ctx.forge(key=other), Reason.BAD_SIGNATURE)
    ctx.rejects(ctx.forge(ctx.header(alg=ctx.alg.lower())), Reason.BAD_SIGNATURE)
    ctx.rejects(ctx.forge(ctx.header(alg=_DROP)), Reason.MALFORMED)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none(ctx: Ctx, alg: str) -> None:
    h = _segment(ctx.header(alg=alg))
    p = _segment(claims())
    ctx.rejects(f"{h}.{p}.", Reason.BAD_SIGNATURE)
    # Keeping a genuine signature of another token changes nothing.
    ctx.rejects(f"{h}.{p}.{segments(ctx.mint())[2]}", Reason.BAD_SIGNATURE)


def _public_key_forms(ctx: Ctx) -> dict[str, bytes]:
    public = ctx.key.private.public_key()
    jwk = json.dumps(next(k for k in json.loads(ctx.keyring.jwks_json)["keys"] if k["kid"] == ctx.key.kid))
    return {
        "pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwks": ctx.keyring.jwks_json.encode(),
        "jwk": jwk.encode(),
        "kid": ctx.key.kid.encode(),
    }


def test_hs256_with_the_public_key_as_secret(ctx: Ctx) -> None:
    """The classic key-confusion attack (RFC 8725 section 2.1)."""
    for alg in ("HS256", "HS384", "HS512"):
        digestmod = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        for form, secret in _public_key_forms(ctx).items():
            signing_input = f"{_segment(ctx.header(alg=alg))}.{_segment(claims())}"
            mac = hmac.new(secret, signing_input.encode("ascii"), digestmod).digest()
            token = f"{signing_input}.{b64url_encode(mac)}"
            with pytest.raises(TokenRejected) as info:
                ctx.verify(token)
            assert info.value.reason is Reason.BAD_SIGNATURE, (alg, form)


def test_es256_all_zero_signature(stored_keys: dict[str, StoredKey], signing_keys: dict[str, SigningKey]) -> None:
    """CVE-2022-21449, the "psychic signature": r = s = 0 must never verify."""
    key = signing_keys["ES256"]
    ctx = Ctx("ES256", key, Keyring(key, list(stored_keys.values())), {})
    signing_input = f"{_segment(ctx.header())}.{_segment(claims())}"
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for r, s in [(0, 0), (0, 1), (1, 0), (order, order), (order, 1)]:
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        ctx.rejects(f"{signing_input}.{b64url_encode(signature)}", Reason.BAD_SIGNATURE)


def test_es256_signature_in_der_form_is_refused(
    stored_keys: dict[str, StoredKey], signing_keys: dict[str, SigningKey]
) -> None:
    """JWS wants the fixed-width r||s form (RFC 7518 section 3.4), never DER."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = signing_keys["ES256"]
    ctx = Ctx("ES256", key, Keyring(key, list(stored_keys.values())), {})
    signing_input = f"{_segment(ctx.header())}.{_segment(claims())}"
    private = key.private
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    der = private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    ctx.rejects(f"{signing_input}.{b64url_encode(der)}", Reason.BAD_SIGNATURE)


# --- integrity -------------------------------------------------------------


def test_tampered_payload(ctx: Ctx) -> None:
    h, p, s = segments(ctx.mint())
    payload = decode_segment(p)
    for change in ({"sub": "admin"}, {"scope": "read write admin"}, {"exp": payload["exp"] + 3600}):
        ctx.rejects(f"{h}.{_segment({**payload, **change})}.{s}", Reason.BAD_SIGNATURE)


def test_tampered_header(ctx: Ctx) -> None:
    h, p, s = segments(ctx.mint())
    header = decode_segment(h)
    reordered = {"typ": header["typ"], "kid": header["kid"], "alg": header["alg"]}
    ctx.rejects(f"{_segment(reordered)}.{p}.{s}", Reason.BAD_SIGNATURE)


def test_truncated_or_extended_signature(ctx: Ctx) -> None:
    h, p, s = segments(ctx.mint())
    signature = b64url_decode(s)
    for bad in (signature[:-1], signature[1:], signature[: len(signature) // 2], b"", signature + b"\0"):
        ctx.rejects(f"{h}.{p}.{b64url_encode(bad)}", Reason.BAD_SIGNATURE)
    ctx.rejects(with_bad_signature(f"{h}.{p}.{s}"), Reason.BAD_SIGNATURE)


def _grant_of_length(ctx: Ctx, target: int) -> tuple[str, str]:
    """The longest minted token of at most ``target`` characters and the
    shortest longer one (base64 cannot hit every length exactly)."""
    base = len(ctx.mint(dataclasses.replace(GRANT, scopes=("read", ""))))
    n = max(0, (target - base) * 3 // 4 - 8)
    below = ""
    while True:
        token = ctx.mint(dataclasses.replace(GRANT, scopes=("read", "x" * n)))
        if len(token) > target:
            assert below, "started above the target"
            return below, token
        below = token
        n += 1


def test_oversize_token(ctx: Ctx) -> None:
    assert MAX_TOKEN_LENGTH == 8192
    at_most, over = _grant_of_length(ctx, MAX_TOKEN_LENGTH)
    assert len(at_most) <= MAX_TOKEN_LENGTH < len(over)
    assert len(at_most) >= MAX_TOKEN_LENGTH - 3
    ctx.verify(at_most)
    ctx.rejects(over, Reason.MALFORMED)
    ctx.rejects(ctx.mint() + "A" * MAX_TOKEN_LENGTH, Reason.MALFORMED)


# --- form ------------------------------------------------------------------


def test_wrong_segment_count(ctx: Ctx) -> None:
    h, p, s = segments(ctx.mint())
    for token in ("", ".", "..", "...", "abc", f"{h}.{p}", f"{h}.{p}.{s}.", f"{h}.{p}.{s}.{s}",
                  f"{h}.{p}.{s}.{p}.{s}", f"{h}..{p}.{s}"):
        ctx.rejects(token, Reason.MALFORMED)


def test_not_a_string(ctx: Ctx) -> None:
    ctx.rejects(ctx.mint().encode(), Reason.MALFORMED)  # type: ignore[arg-type]


def test_padding_is_refused(ctx: Ctx) -> None:
    h, p, s = segments(ctx.mint())
    for token in (f"{h}=.{p}.{s}", f"{h}.{p}.{s}=", f"{h}.{p}.{s}==", f"{h}.{p}.{s}===="):
        ctx.rejects(token, Reason.MALFORMED)
    # A padded payload, properly signed over its padded spelling.
    padded = b64url_encode(json_bytes(claims()))
    padded += "=" * (-len(padded) % 4) or "===="
    ctx.rejects(ctx.forge(payload=padded), Reason.MALFORMED)


def _standard_alphabet_payload(char: str) -> str:
    """A payload whose plain-base64 spelling contains ``char`` (``+`` or ``/``)."""
    filler = {"+": ">", "/": "?"}[char]
    for n in range(3, 12):
        text = base64.b64encode(json_bytes(claims(pad=filler * n))).decode().rstrip("=")
        if char in text:
            return text
    raise AssertionError("no such payload")


@pytest.mark.parametrize("char", ["+", "/"])
def test_standard_base64_alphabet_is_refused(ctx: Ctx, char: str) -> None:
    # Signed over exactly this text, so only the alphabet is wrong.
    ctx.rejects(ctx.forge(payload=_standard_alphabet_payload(char)), Reason.MALFORMED)
    h, p, s = segments(ctx.mint())
    ctx.rejects(f"{h}.{p}.{char}{s[1:]}", Reason.MALFORMED)
    ctx.rejects(f"{char}{h[1:]}.{p}.{s}", Reason.MALFORMED)


@pytest.mark.parametrize("junk", [" ", "\n", "\t", "%", "*", "=", "."])
def test_other_characters_are_refused(ctx: Ctx, junk: str) -> None:
    h, p, s = segments(ctx.mint())
    ctx.rejects(f"{h}.{p}.{s[:10]}{junk}{s[10:]}", Reason.MALFORMED)
    if junk != ".":
        ctx.rejects(ctx.forge(payload=_segment(claims())[:10] + junk + _segment(claims())[10:]), Reason.MALFORMED)


@pytest.mark.parametrize("junk", ["é", "\u00a0", "\uff21", "\U0001f600"])
def test_non_ascii_in_header_or_signature(ctx: Ctx, junk: str) -> None:
    h, p, s = segments(ctx.mint())
    ctx.rejects(f"{h}.{p}.{s[:10]}{junk}{s[10:]}", Reason.MALFORMED)
    ctx.rejects(f"{h[:10]}{junk}{h[10:]}.{p}.{s}", Reason.MALFORMED)


@pytest.mark.parametrize("junk", ["é", "\U0001f600"])
def test_non_ascii_in_payload_is_malformed(ctx: Ctx, junk: str) -> None:
    h, p, s = segments(ctx.mint())
    # No valid signature needed: anyone can send this.
    ctx.rejects(f"{h}.{p[:10]}{junk}{p[10:]}.{s}", Reason.MALFORMED)


def _non_canonical(segment: str) -> str:
    """The same bytes, spelled with non-zero unused trailing bits."""
    assert len(segment) % 4 in (2, 3), "this length has no unused bits"
    last = _URL_ALPHABET.index(segment[-1])
    assert last & 1 == 0
    return segment[:-1] + _URL_ALPHABET[last | 1]


def test_non_canonical_trailing_bits(ctx: Ctx) -> None:
    # Payload: pick a spelling with unused bits, sign exactly that text.
    for n in range(3):
        payload = _segment(claims(pad="x" * n))
        if len(payload) % 4 in (2, 3):
            break
    noncanonical = _non_canonical(payload)
    assert b64url_decode(payload) == base64.urlsafe_b64decode(noncanonical + "=" * (-len(noncanonical) % 4))
    ctx.verify(ctx.forge(payload=payload))
    ctx.rejects(ctx.forge(payload=noncanonical), Reason.MALFORMED)
    # Signature: 64-byte signatures have unused bits; RSA-3072's 384 bytes have none.
    h, p, s = segments(ctx.mint())
    if len(s) % 4:
        ctx.rejects(f"{h}.{p}.{_non_canonical(s)}", Reason.MALFORMED)
    else:
        assert ctx.alg in ("PS256", "RS256")


def test_duplicate_members_in_the_header(ctx: Ctx) -> None:
    kid = json.dumps(ctx.key.kid)
    alg = json.dumps(ctx.alg)
    for raw in (
        f'{{"alg":{alg},"kid":{kid},"typ":"at+jwt","alg":{alg}}}',
        f'{{"alg":"none","kid":{kid},"typ":"at+jwt","alg":{alg}}}',
        f'{{"alg":{alg},"kid":{kid},"typ":"at+jwt","kid":{kid}}}',
        f'{{"alg":{alg},"kid":{kid},"typ":"JWT","typ":"at+jwt"}}',
    ):
        ctx.rejects(ctx.forge(header=raw.encode()), Reason.MALFORMED)


def test_duplicate_members_in_the_payload(ctx: Ctx) -> None:
    body = json_bytes(claims())[:-1]
    for extra in (b',"sub":"admin"}', b',"exp":9999999999}', b',"aud":"orders"}', b',"scope":"admin"}'):
        ctx.rejects(ctx.forge(payload=body + extra), Reason.MALFORMED)
    ctx.verify(ctx.forge(payload=body + b',"extra":"fine"}'))


def test_not_utf8(ctx: Ctx) -> None:
    header = json_bytes(ctx.header(kid=ctx.key.kid))
    ctx.rejects(ctx.forge(header=header.replace(b"at+jwt", b"at+jwt\xff")), Reason.MALFORMED)
    ctx.rejects(ctx.forge(payload=json_bytes(claims()).replace(b"user-42", b"user-\xc3\x28")), Reason.MALFORMED)
    ctx.rejects(ctx.forge(payload=b"\xef\xbb\xbf" + json_bytes(claims())), Reason.MALFORMED)  # BOM
    # Encoded lone surrogate (CESU-8): not UTF-8 either.
    ctx.rejects(ctx.forge(payload=json_bytes(claims()).replace(b"user-42", b"user-\xed\xa0\x80")), Reason.MALFORMED)


@pytest.mark.parametrize(
    "payload",
    [b"[]", b'"text"', b"null", b"42", b"", b"{", b'{"exp":NaN}', b'{"exp":Infinity}'],
    ids=["array", "string", "null", "number", "empty", "truncated", "nan", "infinity"],
)
def test_payload_not_a_json_object(ctx: Ctx, payload: bytes) -> None:
    ctx.rejects(ctx.forge(payload=payload), Reason.MALFORMED)


def test_payload_nested_too_deep(ctx: Ctx) -> None:
    depth = 3000
    ctx.rejects(ctx.forge(payload=b'{"x":' + b"[" * depth + b"]" * depth + b"}"), Reason.MALFORMED)


def test_numbers_out_of_range(ctx: Ctx) -> None:
    body = json_bytes(claims(exp=_DROP))[:-1]
    ctx.rejects(ctx.forge(payload=body + b',"exp":1e400}'), Reason.MALFORMED)
    ctx.rejects(ctx.forge(payload=body + b',"exp":-1e400}'), Reason.MALFORMED)
    ctx.rejects(ctx.forge(payload=body + b',"exp":' + b"9" * 5000 + b"}"), Reason.MALFORMED)


@pytest.mark.parametrize("header", [b"[]", b'"at+jwt"', b"", b"{"], ids=["array", "string", "empty", "truncated"])
def test_header_not_a_json_object(ctx: Ctx, header: bytes) -> None:
    ctx.rejects(ctx.forge(header=header), Reason.MALFORMED)


_NOT_NUMBERS = ["1700000300", True, False, [1700000300], {"t": 1}, 1e400, float("nan")]


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name in ("exp", "iat", "nbf", "auth_time") for value in _NOT_NUMBERS]
    # null reads as absent for the optional ones; for the required ones it is malformed
    + [("exp", None), ("iat", None)],
)
def test_numeric_dates_must_be_numbers(ctx: Ctx, name: str, value: Any) -> None:
    ctx.rejects(ctx.forge(payload=claims(**{name: value})), Reason.MALFORMED)


@pytest.mark.parametrize("aud", [{"orders": True}, 7, None, ["orders", 7], [["orders"]], True])
def test_aud_must_be_a_string_or_strings(ctx: Ctx, aud: Any) -> None:
    ctx.rejects(ctx.forge(payload=claims(aud=aud)), Reason.MALFORMED)


@pytest.mark.parametrize("name", ["exp", "iss", "aud", "jti", "sub", "iat"])
def test_required_claims(ctx: Ctx, name: str) -> None:
    ctx.rejects(ctx.forge(payload=claims(**{name: _DROP})), Reason.MALFORMED)


@pytest.mark.parametrize(
    ("name", "value"),
    [("iss", ""), ("sub", ""), ("jti", ""), ("iss", 1), ("sub", ["a"]), ("scope", ["read"]), ("sid", 5),
     ("client_id", None), ("amr", 5), ("amr", ["pwd", 5]), ("acr", 2), ("cnf", "x"), ("cnf", {"x5t#S256": 5})],
)
def test_claims_of_the_wrong_type(ctx: Ctx, name: str, value: Any) -> None:
    ctx.rejects(ctx.forge(payload=claims(**{name: value})), Reason.MALFORMED)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jwk", {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        ("jku", "https://evil.test/jwks.json"),
        ("x5u", "https://evil.test/cert.pem"),
        ("x5c", ["MIIBszCCAVmgAwIBAgIUY"]),
        ("x5t", "dGh1bWI"),
        ("x5t#S256", "dGh1bWI"),
        ("crit", ["exp"]),
        ("b64", False),
        ("zip", "DEF"),
        ("enc", "A256GCM"),
        ("cty", "JWT"),
    ],
)
def test_header_members_we_do_not_write_are_refused(ctx: Ctx, name: str, value: Any) -> None:
    ctx.rejects(ctx.forge(ctx.header(**{name: value})), Reason.MALFORMED)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+JWS", "application/jwt", "", "at+jwt ", 1, None, _DROP])
def test_wrong_typ(ctx: Ctx, typ: Any) -> None:
    ctx.rejects(ctx.forge(ctx.header(typ=typ)), Reason.WRONG_TYPE)


# --- interoperability ------------------------------------------------------


@pytest.fixture
def pyjwt_keys(ctx: Ctx) -> Iterator[jwt.PyJWKSet]:
    yield jwt.PyJWKSet.from_json(ctx.keyring.jwks_json)


def test_pyjwt_verifies_what_authsvc_mints(ctx: Ctx, pyjwt_keys: jwt.PyJWKSet) -> None:
    now = time.time()  # PyJWT reads the real clock; nothing here waits on it
    grant = dataclasses.replace(GRANT, auth_time=now - 5, cert_thumbprint=THUMBPRINT)
    token, jti, exp = mint_access_token(grant, key=ctx.key, issuer=ISSUER, now=now, ttl=TTL)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": ctx.alg, "kid": ctx.key.kid, "typ": "at+jwt"}
    public = pyjwt_keys[header["kid"]]
    assert public.algorithm_name == ctx.alg
    decoded = jwt.decode(
        token,
        key=public,
        algorithms=[ctx.alg],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    assert decoded["jti"] == jti
    assert decoded["exp"] == exp
    assert decoded["sub"] == "user-42"
    assert decoded["cnf"] == {"x5t#S256": THUMBPRINT}
    # PyJWT, pinned to another algorithm, refuses it too.
    other = next(a for a in ALGS if a != ctx.alg)
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(token, key=public, algorithms=[other], audience=AUDIENCE, issuer=ISSUER)


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _flip_s(token: str) -> str:
    """The same ES256 signature spelled the other way: (r, n - s)."""
    head, body, sig = token.split(".")
    raw = b64url_decode(sig)
    s = int.from_bytes(raw[32:], "big")
    return f"{head}.{body}.{b64url_encode(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"


def _low_s(token: str) -> str:
    s = int.from_bytes(b64url_decode(token.split(".")[2])[32:], "big")
    return _flip_s(token) if s > P256_ORDER // 2 else token


def test_authsvc_verifies_what_pyjwt_signs(ctx: Ctx) -> None:
    payload = claims()
    token = jwt.encode(payload, ctx.key.private, algorithm=ctx.alg, headers={"kid": ctx.key.kid, "typ": "at+jwt"})
    if ctx.alg == "ES256":
        token = _low_s(token)  # PyJWT leaves half of its signatures high-S, which authsvc never accepts
    got = ctx.verify(token)
    assert got.jti == payload["jti"]
    assert got.scope == ("read", "write")


def test_es256_signatures_are_low_s_and_high_s_is_refused(
    stored_keys: dict[str, StoredKey], signing_keys: dict[str, SigningKey]
) -> None:
    """One token, one spelling: (r, s) and (r, n - s) both verify under plain
    ECDSA; authsvc signs only the low one and accepts only the low one."""
    key = signing_keys["ES256"]
    keys = Keyring(key, [stored_keys["ES256"]]).verification_keys
    for _ in range(64):  # each signature is random: without the rule about half would come out high
        token, _, _ = mint_access_token(GRANT, key=key, issuer=ISSUER, now=NOW, ttl=TTL)
        s = int.from_bytes(b64url_decode(token.split(".")[2])[32:], "big")
        assert s <= P256_ORDER // 2
        assert read_access_token(token, keys).jti
        with pytest.raises(TokenRejected) as rejected:
            read_access_token(_flip_s(token), keys)
        assert rejected.value.reason is Reason.BAD_SIGNATURE
