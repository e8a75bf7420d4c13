from __future__ import annotations

import json

import pytest

from authsvc_client import pb

from ..integration.helpers import add_user, login
from .table import Material


@pytest.fixture(scope="module")
async def material(stub, store, passwords, clock) -> Material:
    """Two real access tokens for audience "orders" and the published JWKS:
    everything an attacker on the wire, or a malicious service, holds."""
    user = await add_user(store, passwords, clock, scopes=("read",), audiences=("orders",))
    token = (await login(stub, user, audience=["orders"], scope=["read"])).access_token
    other = (await login(stub, user, audience=["orders"], scope=["read"])).access_token
    jwks = json.loads((await stub.GetJWKS(pb.GetJWKSRequest())).jwks_json)
    return Material(token=token, other=other, jwks=jwks)
