"""The token-exchange grant on /oauth2/token (RFC 8693 section 2), over real
HTTPS with a real HTTP client: the same domain call as the ExchangeToken RPC."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx2
import pytest

from authsvc.domain.identity import credentials

from ..conftest import unique
from ..integration.helpers import ClientCreds, add_user, login
from .conftest import base_url

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TXN = "urn:ietf:params:oauth:token-type:txn_token"


def claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


async def actor(https, clock, exchange: tuple[str, ...]) -> ClientCreds:
    client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
    await https.deps.store.create_client(
        client_id, unique("gw"), credentials.digest(secret), ("read",), ("gateway",), clock.now(),
        exchange_audiences=exchange,
    )  # fmt: skip
    return ClientCreds(client_id, secret)


@pytest.fixture
async def subject(https, grpc_stub, oauth_clock) -> str:
    user = await add_user(https.deps.store, https.deps.passwords, oauth_clock, scopes=("read", "write"),
                          audiences=("gateway",))  # fmt: skip
    return (await login(grpc_stub, user, audience=["gateway"])).access_token


async def post(https, pki, who: ClientCreds, **form: str) -> tuple[int, dict[str, Any]]:
    async with httpx2.AsyncClient(verify=pki.client_context(), timeout=10) as client:
        answer = await client.post(
            base_url(https) + "/oauth2/token", data={"grant_type": EXCHANGE, **form}, auth=(who.id, who.secret)
        )
    return answer.status_code, answer.json()


async def test_a_delegated_token_over_http(https, pki, subject, oauth_clock):
    gateway = await actor(https, oauth_clock, ("orders",))
    status, body = await post(https, pki, gateway, subject_token=subject, subject_token_type=ACCESS,
                              audience="orders", scope="read")  # fmt: skip
    assert status == 200, body
    assert (body["issued_token_type"], body["token_type"], body["scope"]) == (ACCESS, "Bearer", "read")
    assert 0 < body["expires_in"] <= 300 and "refresh_token" not in body
    got = claims(body["access_token"])
    assert (got["aud"], got["act"], got["client_id"]) == ("orders", {"sub": gateway.id}, gateway.id)
    assert got["sub"] == claims(subject)["sub"] and got["sid"] == claims(subject)["sid"]


async def test_a_txn_token_over_http(https, pki, subject, oauth_clock):
    domain = https.deps.policy.trust_domain
    gateway = await actor(https, oauth_clock, (domain,))
    status, body = await post(
        https, pki, gateway, subject_token=subject, subject_token_type=ACCESS, requested_token_type=TXN,
        audience=domain, scope="read", request_details=json.dumps({"order": 7}),
        request_context=json.dumps({"req_ip": "198.51.100.4"}),
    )  # fmt: skip
    assert status == 200, body
    assert (body["issued_token_type"], body["token_type"]) == (TXN, "N_A")  # the draft, section 7.4
    got = claims(body["access_token"])
    assert (got["aud"], got["tctx"], got["rctx"]["req_ip"], got["req_wl"]) == (
        domain, {"order": 7}, "198.51.100.4", gateway.id,
    )  # fmt: skip


async def test_exchange_errors_are_oauth_errors(https, pki, subject, oauth_clock):
    gateway = await actor(https, oauth_clock, ("orders",))
    nobody = await actor(https, oauth_clock, ())
    base = {"subject_token": subject, "subject_token_type": ACCESS, "audience": "orders"}
    assert await post(https, pki, nobody, **base) == (
        400, {"error": "invalid_target", "error_description": "audience not allowed for exchange"},
    )  # fmt: skip
    assert (await post(https, pki, gateway, **base, scope="write admin"))[1]["error"] == "invalid_scope"
    forged = {**base, "subject_token": subject[:-4] + ("AAAA" if not subject.endswith("AAAA") else "BBBB")}
    assert await post(https, pki, gateway, **forged) == (
        400, {"error": "invalid_request", "error_description": "invalid subject_token"},
    )  # fmt: skip
    for missing in ("subject_token", "subject_token_type"):
        status, body = await post(https, pki, gateway, **{k: v for k, v in base.items() if k != missing})
        assert (status, body["error"]) == (400, "invalid_request"), missing
    status, body = await post(https, pki, gateway, **base, actor_token=subject, actor_token_type=ACCESS)
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await post(https, pki, ClientCreds(gateway.id, "not-" + gateway.secret), **base)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_the_metadata_names_the_grant(https, pki):
    async with httpx2.AsyncClient(verify=pki.client_context(), timeout=10) as client:
        meta = (await client.get(base_url(https) + "/.well-known/oauth-authorization-server")).json()
    assert EXCHANGE in meta["grant_types_supported"]
