"""Bad input at the HTTP door: a clear 4xx with an RFC 6749 error, never a
500, never an echo of a secret."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import httpx2
import pytest

from ..integration.helpers import add_client
from .conftest import base_url

SECRET = "s3cr3t-value-that-must-not-echo"


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    status: int
    error: str
    form: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC = {"grant_type": "client_credentials"}
CASES = [
    Case("json instead of a form", "/oauth2/token", 400, "invalid_request",
         content=b'{"grant_type": "client_credentials"}', headers={"Content-Type": "application/json"}),
    Case("no content type", "/oauth2/token", 400, "invalid_request", content=b"grant_type=client_credentials"),
    Case("multipart", "/oauth2/token", 400, "invalid_request",
         content=b"--x\r\n\r\n--x--", headers={"Content-Type": "multipart/form-data; boundary=x"}),
    Case("no grant_type", "/oauth2/token", 400, "invalid_request", form={}),
    Case("unknown grant", "/oauth2/token", 400, "unsupported_grant_type", form={"grant_type": "password"}),
    Case("grant given twice", "/oauth2/token", 400, "invalid_request",
         content=b"grant_type=client_credentials&grant_type=refresh_token", headers=FORM),
    Case("a body past the limit", "/oauth2/token", 413, "invalid_request",
         content=b"grant_type=client_credentials&x=" + b"a" * 40_000, headers=FORM),
    Case("not UTF-8", "/oauth2/token", 400, "invalid_request", content=b"grant_type=%ff%fe", headers=FORM),
    Case("too many fields", "/oauth2/token", 400, "invalid_request",
         content=b"&".join(b"f%d=1" % i for i in range(100)), headers=FORM),
    Case("Basic that is not base64", "/oauth2/token", 401, "invalid_client",
         form=CC, headers={"Authorization": "Basic %%%"}),
    Case("Basic without a colon", "/oauth2/token", 401, "invalid_client",
         form=CC, headers={"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}),
    Case("a Bearer token is no client authentication", "/oauth2/token", 401, "invalid_client",
         form=CC, headers={"Authorization": "Bearer abc"}),
    Case("two client authentication methods", "/oauth2/token", 400, "invalid_request",
         form={**CC, "client_secret": SECRET}, headers=basic("c_1", SECRET)),
    Case("client_id differing from the header", "/oauth2/token", 400, "invalid_request",
         form={**CC, "client_id": "c_2"}, headers=basic("c_1", SECRET)),
    Case("no client at all", "/oauth2/token", 401, "invalid_client", form=CC),
    Case("unknown client", "/oauth2/token", 401, "invalid_client", form=CC, headers=basic("c_nobody", SECRET)),
    Case("a client_id past the limit", "/oauth2/token", 400, "invalid_request",
         form=CC, headers=basic("c" * 5000, SECRET)),
    Case("a NUL in the secret", "/oauth2/token", 400, "invalid_request", form=CC, headers=basic("c_1", "a\0b")),
    Case("a scope with a control character", "/oauth2/token", 400, "invalid_request",
         form={**CC, "scope": "read\x07"}, headers=basic("c_1", SECRET)),
    Case("refresh without a token", "/oauth2/token", 400, "invalid_request", form={"grant_type": "refresh_token"}),
    Case("refresh with garbage", "/oauth2/token", 400, "invalid_grant",
         form={"grant_type": "refresh_token", "refresh_token": "garbage"}),
    Case("refresh asking for another audience", "/oauth2/token", 400, "invalid_target",
         form={"grant_type": "refresh_token", "refresh_token": "a.b", "audience": "payroll"}),
    Case("introspection without a client", "/oauth2/introspect", 401, "invalid_client", form={"token": "x"}),
    Case("revocation without a client", "/oauth2/revoke", 401, "invalid_client", form={"token": "x"}),
]


@pytest.fixture(scope="module")
async def known(https, oauth_clock):
    return await add_client(https.deps.store, oauth_clock)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_bad_input_gets_a_clear_4xx(https, pki, case: Case):
    async with httpx2.AsyncClient(verify=pki.client_context(), timeout=10) as raw:
        answer = await raw.post(base_url(https) + case.path, data=case.form, content=case.content, headers=case.headers)
    assert answer.status_code == case.status, answer.text
    body = answer.json()
    assert body["error"] == case.error and body["error_description"]
    assert set(body) == {"error", "error_description"}
    assert SECRET not in answer.text
    assert answer.headers["cache-control"] == "no-store"
    if case.status == 401:
        assert answer.headers["www-authenticate"].startswith("Basic")


async def test_missing_token_at_introspection_and_revocation(https, pki, known):
    async with httpx2.AsyncClient(verify=pki.client_context(), timeout=10) as raw:
        for path in ("/oauth2/introspect", "/oauth2/revoke"):
            answer = await raw.post(base_url(https) + path, data={}, auth=(known.id, known.secret))
            assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request"), path


async def test_wrong_methods_and_paths(https, pki):
    async with httpx2.AsyncClient(verify=pki.client_context(), timeout=10) as raw:
        assert (await raw.get(base_url(https) + "/oauth2/token")).status_code == 405
        assert (await raw.post(base_url(https) + "/.well-known/jwks.json")).status_code == 405
        assert (await raw.get(base_url(https) + "/oauth2/nothing")).status_code == 404
