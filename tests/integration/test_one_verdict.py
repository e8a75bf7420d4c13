"""Issue 12: Verify and the local TokenVerifier give the same verdict, token by
token. One generated corpus, every token signed with authsvc's real signing
key (so the signature is never what decides), covering edge values of every
claim and header member: types, ranges, floats, huge and negative numbers,
unicode, duplicates, nesting, missing members. Each token goes through the
Verify RPC and through a running TokenVerifier; the (active, reason) pairs and
the claims of active tokens must match one for one.

Before the fix, tokens with ``exp`` = 10^20, 2^63 or 1e300, or a time claim of
-2^64, were VALID locally and INTERNAL from Verify; a lone surrogate in a
string claim was INTERNAL too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from authsvc.server import App
from authsvc_client import MAX_TOKEN_LENGTH, AsyncAuthClient, Reason, Requirements, TokenRejected, TokenVerifier, pb
from authsvc_client import grpc as pb_grpc
from authsvc_client._jose import b64url_encode, sign
from authsvc_client._models import claims as claims_from_pb

AUDIENCE = "orders"
_MISSING = object()


@dataclass(frozen=True)
class Case:
    name: str
    token: str
    requirements: Requirements


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _object(members: dict[str, Any]) -> str:
    """A JSON object, written by hand so that a member may carry raw JSON text
    (``RawJson``): duplicates, NaN, lone surrogates, huge numbers."""
    parts = []
    for name, value in members.items():
        if value is _MISSING:
            continue
        text = value.text if isinstance(value, RawJson) else _json(value)
        parts.append(f"{_json(name)}:{text}")
    return "{" + ",".join(parts) + "}"


@dataclass(frozen=True)
class RawJson:
    text: str


class Corpus:
    def __init__(self, app: App, now: float) -> None:
        assert app.deps is not None
        self.key = app.deps.live.keyring.signer
        self.issuer = app.settings.policy.issuer
        self.now = int(now)

    def header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": self.key.alg, "kid": self.key.kid, "typ": "at+jwt", **changes}

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = self.now
        base: dict[str, Any] = {
            "iss": self.issuer, "sub": "user-1", "aud": AUDIENCE, "exp": now + 300, "iat": now - 10,
            "nbf": now - 10, "jti": "jti-1", "client_id": "cli", "scope": "read write", "sid": "",
            "auth_time": now - 60, "amr": ["pwd"], "acr": "1",
        }  # fmt: skip
        base.update(changes)
        return base

    def token(self, header: str | dict[str, Any], payload: str | bytes | dict[str, Any]) -> str:
        head = header if isinstance(header, str) else _object(header)
        body = payload if isinstance(payload, bytes) else (payload if isinstance(payload, str) else _object(payload))
        h = b64url_encode(head.encode("utf-8", "surrogatepass"))
        p = b64url_encode(body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass"))
        signature = sign(self.key.alg, self.key.private, f"{h}.{p}".encode("ascii"))
        return f"{h}.{p}.{b64url_encode(signature)}"


# Values tried in every claim: the registered claims' right types, wrong types
# and edges of each.
NUMBERS: list[Any] = [
    0, 1, -1, 1.5, -0.5, 2**31, 2**53, 2**63 - 1, 2**63, -(2**63), -(2**64), 10**20, 10**400,
    RawJson("1e300"), RawJson("-1e300"), RawJson("1e400"), RawJson("NaN"), RawJson("Infinity"),
    RawJson("-0"), RawJson("1.0"), RawJson("1E3"),
]  # fmt: skip
TEXTS: list[Any] = [
    "", "a", "é", "\u0000", "日本", "\U0001f600", " ", "a b", "x" * 1000,
    RawJson('"\\ud800"'), RawJson('"\\udfff"'), RawJson('"\\ud83d\\ude00"'), RawJson('"\\u0000"'),
]  # fmt: skip
OTHERS: list[Any] = [None, True, False, [], {}, ["a"], ["a", 1], [["a"]], {"a": 1}, [None], _MISSING]


def _claim_values(now: int) -> dict[str, list[Any]]:
    times = [now - 10, now + 300, now - 400, now + 400, now + 29, now - 29, now - 31, now + 31, now - 1e-3]
    strings = ["read", "read write", "write", "read\twrite", "read  write", "read\u2003write", ["read"]]
    return {
        "iss": [*TEXTS, *OTHERS, "authsvc", "authsvc-test "],
        "sub": [*TEXTS, *OTHERS],
        "aud": [*TEXTS, *OTHERS, [AUDIENCE], ["x", AUDIENCE], [AUDIENCE, 1], [AUDIENCE] * 40],
        "exp": [*NUMBERS, *OTHERS, *times, str(now + 300)],
        "iat": [*NUMBERS, *OTHERS, *times],
        "nbf": [*NUMBERS, *OTHERS, *times],
        "auth_time": [*NUMBERS, *OTHERS, now - 100_000],
        "jti": [*TEXTS, *OTHERS],
        "client_id": [*TEXTS, *OTHERS],
        "scope": [*TEXTS, *OTHERS, *strings],
        "sid": [*TEXTS, *OTHERS],
        "amr": [*TEXTS, *OTHERS, ["pwd", "otp"], ["pwd", RawJson('"\\ud800"')]],
        "acr": [*TEXTS, *OTHERS],
        "cnf": [*OTHERS, {"x5t#S256": "abc"}, {"x5t#S256": 1}, {"x5t#S256": ""}, {"jkt": "x"},
                {"x5t#S256": RawJson('"\\ud800"')}],
        "act": [*TEXTS, *OTHERS, {"sub": "c_gw"}, {"sub": "c_orders", "act": {"sub": "c_gw"}}, {"sub": ""},
                {"sub": 1}, {"sub": "c_orders", "act": "c_gw"}, {"sub": "c_orders", "iss": "x"},
                {"sub": RawJson('"\\ud800"')}, _chain(16), _chain(17)],
    }


def _chain(actors: int) -> dict[str, Any]:
    """An `act` chain (RFC 8693 4.1) this many actors deep."""
    act: dict[str, Any] = {"sub": "a0"}
    for i in range(1, actors):
        act = {"sub": f"a{i}", "act": act}
    return act


def _raw(value: Any) -> Any:
    """A value inside a list or dict cannot be RawJson for json.dumps: write it out."""
    if isinstance(value, list) and any(isinstance(v, RawJson) for v in value):
        return RawJson("[" + ",".join(v.text if isinstance(v, RawJson) else _json(v) for v in value) + "]")
    if isinstance(value, dict) and any(isinstance(v, RawJson) for v in value.values()):
        return RawJson(_object(value))
    return value


def corpus(c: Corpus) -> Iterator[Case]:
    """Every token fits the 8 KiB that VerifyRequest allows: past it Verify
    answers INVALID_ARGUMENT (a request outside the contract) where the local
    verifier says MALFORMED (tests/integration/test_verify.py holds that)."""
    plain = Requirements(audience=AUDIENCE)
    yield Case("valid", c.token(c.header(), c.claims()), plain)
    for claim, values in _claim_values(c.now).items():
        for i, value in enumerate(values):
            yield Case(f"{claim}[{i}]", c.token(c.header(), c.claims(**{claim: _raw(value)})), plain)
    # Header members: alg, kid and typ values, and members we never write.
    headers: list[tuple[str, Any]] = [
        (f"typ={v!r}", c.header(typ=v))
        for v in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT", "jwt", "JWT", "", None, 1,
                  ["at+jwt"], _MISSING, "at+jwt ", "txntoken+jwt"]
    ]
    headers += [(f"alg={v!r}", c.header(alg=v)) for v in ["none", "HS256", "ES256", "RS256", "eddsa", "", None, 1,
                                                           _MISSING]]  # fmt: skip
    headers += [(f"kid={v!r}", c.header(kid=v)) for v in ["", "nope", "x" * 128, "x" * 129, None, 1, [c.key.kid],
                                                           _MISSING, RawJson('"\\ud800"')]]  # fmt: skip
    for member, value in [("jku", "https://x"), ("x5u", "https://x"), ("jwk", {"kty": "OKP"}), ("crit", ["exp"]),
                          ("b64", False), ("zip", "DEF"), ("cty", "JWT"), ("x5c", ["MII"]), ("extra", 1)]:
        headers.append((f"+{member}", c.header(**{member: value})))  # fmt: skip
    for name, header in headers:
        yield Case(f"header {name}", c.token(header, c.claims()), plain)
    # Raw texts: duplicates, non-objects, bad UTF-8, deep nesting, padding.
    body = _object(c.claims())[1:-1]
    raws: list[tuple[str, str, str | bytes]] = [
        ("dup exp", _object(c.header()), "{" + body + f',"exp":{c.now - 1000}' + "}"),
        ("dup sub", _object(c.header()), "{" + body + ',"sub":"other"}'),
        ("dup alg", '{"alg":"none",' + _object(c.header())[1:], _object(c.claims())),
        ("dup kid", _object(c.header())[:-1] + ',"kid":"other"}', _object(c.claims())),
        ("array", _object(c.header()), "[" + body + "]"),
        ("string", _object(c.header()), '"x"'),
        ("number", _object(c.header()), "1"),
        ("null", _object(c.header()), "null"),
        ("empty", _object(c.header()), ""),
        ("trailing", _object(c.header()), _object(c.claims()) + "x"),
        ("trailing space", _object(c.header()), _object(c.claims()) + " "),
        ("leading BOM", _object(c.header()), "\ufeff" + _object(c.claims())),
        ("bad utf-8", _object(c.header()), b"{" + body.encode() + b',"x":"\xff"}'),
        ("overlong utf-8", _object(c.header()), b"{" + body.encode() + b',"x":"\xc0\xaf"}'),
        ("deep", _object(c.header()), "{" + body + ',"x":' + "[" * 1500 + "]" * 1500 + "}"),
        ("deep object", _object(c.header()), "{" + body + ',"x":' + '{"a":' * 900 + "1" + "}" * 900 + "}"),
        ("single quotes", _object(c.header()), _object(c.claims()).replace('"', "'")),
        ("comment", _object(c.header()), "{/*x*/" + body + "}"),
        ("header array", "[1]", _object(c.claims())),
        ("header not json", "x", _object(c.claims())),
        ("header bad utf-8", '{"alg":"EdDSA","kid":"\xff"}', _object(c.claims())),
    ]
    for name, header_text, payload in raws:
        yield Case(f"raw {name}", c.token(header_text, payload), plain)
    # Compact serialization: parts, padding, alphabet.
    good = c.token(c.header(), c.claims())
    h, p, s = good.split(".")
    shapes = {
        "two parts": f"{h}.{p}", "four parts": f"{good}.x", "padded": f"{h}==.{p}.{s}",
        "std alphabet": f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}", "space": f" {good}",
        "newline": f"{good}\n", "empty signature": f"{h}.{p}.", "cut signature": f"{h}.{p}.{s[:-4]}",
        "other bits": f"{h}.{p}.{s[:-1]}{'B' if s[-1] == 'A' else 'A'}", "dots": "..", "non-ascii": f"é{good}",
        "jwe-like": f"{h}.{p}.x.y.z",
    }  # fmt: skip
    for name, token in shapes.items():
        yield Case(f"shape {name}", token, plain)
    # Requirements: audience, scopes, auth age, binding.
    valid = c.token(c.header(), c.claims())
    bound = c.token(c.header(), c.claims(cnf={"x5t#S256": "thumb"}))
    delegated = c.token(c.header(), c.claims(act={"sub": "c_gw"}))
    chained = c.token(c.header(), c.claims(act=_chain(2)))
    for name, req, token in [
        ("wrong audience", Requirements(audience="billing"), valid),
        ("scope held", Requirements(audience=AUDIENCE, scopes=("read",)), valid),
        ("scope missing", Requirements(audience=AUDIENCE, scopes=("admin",)), valid),
        ("recent auth", Requirements(audience=AUDIENCE, max_auth_age=120), valid),
        ("old auth", Requirements(audience=AUDIENCE, max_auth_age=30), valid),
        ("bound, no cert", plain, bound),
        ("bound, right cert", Requirements(audience=AUDIENCE, cert_thumbprint="thumb"), bound),
        ("bound, wrong cert", Requirements(audience=AUDIENCE, cert_thumbprint="other"), bound),
        ("encrypted only", Requirements(audience=AUDIENCE, require_encrypted=True), valid),
        ("undelegated, no delegation", Requirements(audience=AUDIENCE, max_delegation_depth=0), valid),
        ("delegated, no delegation", Requirements(audience=AUDIENCE, max_delegation_depth=0), delegated),
        ("delegated, one hop", Requirements(audience=AUDIENCE, max_delegation_depth=1), delegated),
        ("chained, one hop", Requirements(audience=AUDIENCE, max_delegation_depth=1), chained),
    ]:
        yield Case(f"requirements {name}", token, req)


Verdict = tuple[bool, Reason | None, tuple[Any, ...] | None]


def _registered(claims: Any) -> tuple[Any, ...]:
    return (claims.iss, claims.sub, claims.aud, claims.exp, claims.iat, claims.nbf, claims.jti, claims.client_id,
            claims.scope, claims.sid, claims.auth_time, claims.amr, claims.acr, claims.cnf_x5t_s256,
            claims.act)  # fmt: skip


async def _by_rpc(stub: pb_grpc.AuthServiceAsyncStub, case: Case) -> Verdict:
    r = case.requirements
    resp = await stub.Verify(
        pb.VerifyRequest(
            token=case.token, audience=r.audience, required_scope=list(r.scopes), cert_thumbprint=r.cert_thumbprint,
            max_auth_age_seconds=r.max_auth_age, require_encrypted=r.require_encrypted,
            max_delegation_depth=r.max_delegation_depth,
        )
    )  # fmt: skip
    if resp.active:
        return True, None, _registered(claims_from_pb(resp.claims))
    return False, Reason(resp.reason), None


async def _locally(verifier: TokenVerifier, case: Case) -> Verdict:
    try:
        claims = await verifier.verify(case.token, case.requirements)
    except TokenRejected as rejected:
        return False, rejected.reason, None
    return True, None, _registered(claims)


@pytest.fixture(scope="module")
async def verifier(app, channel, clock):
    v = TokenVerifier(AsyncAuthClient(channel), issuer=app.settings.policy.issuer, clock=clock.now)
    await v.start()
    yield v
    await v.close()


async def test_verify_and_the_local_verifier_agree_on_every_token(app, stub, verifier, clock):
    cases = list(corpus(Corpus(app, clock.now())))
    assert len(cases) >= 300
    assert all(len(case.token) <= MAX_TOKEN_LENGTH for case in cases)
    differ = []
    counts: dict[str, int] = {}
    for case in cases:
        remote, local = await _by_rpc(stub, case), await _locally(verifier, case)
        if remote != local:
            differ.append(f"{case.name}: Verify {remote[:2]}, local {local[:2]}")
        key = "VALID" if remote[1] is None else remote[1].name
        counts[key] = counts.get(key, 0) + 1
    print(f"\n{len(cases)} tokens, {len(cases) - len(differ)} agreed: {dict(sorted(counts.items()))}")
    assert differ == []
    # The corpus is worth something only if it reaches both sides of the rules.
    assert counts.get("VALID", 0) >= 20 and counts.get("MALFORMED", 0) >= 100
    every_reason = {r.name for r in Reason} | {"VALID"}
    assert counts.keys() == every_reason - {"REVOKED"}  # revocation is the feed's test, not this one's


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", 10**20), ("exp", 2**63), ("exp", RawJson("1e300")), ("iat", -(2**64)), ("nbf", -(2**64)),
     ("auth_time", -(2**64)), ("sub", RawJson('"\\ud800"'))],
)
async def test_the_values_that_broke_verify_are_malformed_on_both_sides(app, stub, verifier, clock, claim, value):
    c = Corpus(app, clock.now())
    case = Case(claim, c.token(c.header(), c.claims(**{claim: value})), Requirements(audience=AUDIENCE))
    assert await _by_rpc(stub, case) == await _locally(verifier, case) == (False, Reason.MALFORMED, None)
