"""The requests each load process sends: built in the parent (picklable),
prepared in the child before the clock starts."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import load_der_private_key
from envoy.service.auth.v3 import attribute_context_pb2 as attrs
from envoy.service.auth.v3 import external_auth_pb2 as ext

from authsvc.domain.tokens.mint import Grant, mint_access_token
from authsvc.domain.tokens.signing_keys import SigningKey
from authsvc_client import TXN_TOKEN_TYPE, pb

from .database import EXCHANGE_AUDIENCE, PASSWORD, TRUST_DOMAIN, SignerSpec

AUDIENCE = "orders"
#: Field 1 (varint) = 1: VerifyResponse.active true.
ACTIVE = b"\x08\x01"
#: The same bytes in RevokeResponse: revoked = 1.
REVOKED_ONE = b"\x08\x01"
#: Field 1 (length-delimited): IssueResponse.tokens, not an MFA challenge.
TOKENS = b"\x0a"
#: The same bytes in ExchangeTokenResponse: access_token, the issued token.
ISSUED = b"\x0a"
#: CheckResponse.status, a google.rpc.Status with code 0 (OK): the request is allowed.
CHECK_ALLOWED = b"\x0a\x00"


def user_grant() -> Grant:
    """What a password login grants (a session token: sid, amr, acr)."""
    return Grant(
        subject=str(uuid.uuid4()), audiences=("authsvc", AUDIENCE), scopes=("read", "write"),
        client_id="authsvc", auth_time=time.time(), amr=("pwd",), acr="aal1", session_id=str(uuid.uuid4()),
    )  # fmt: skip


def client_grant(client_id: str) -> Grant:
    """What client credentials grant (no session)."""
    return Grant(
        subject=client_id, audiences=(AUDIENCE,), scopes=("orders.read",), client_id=client_id,
        auth_time=time.time(), amr=(), acr="",
    )  # fmt: skip


def mint(signer: SignerSpec, grants: list[Grant]) -> list[str]:
    """Tokens as authsvc mints them: its own function, its own active key."""
    private = load_der_private_key(signer.pkcs8, password=None)
    key = SigningKey(kid=signer.kid, alg=signer.alg, private=private)  # type: ignore[arg-type]
    now = time.time()
    return [mint_access_token(g, key=key, issuer=signer.issuer, now=now, ttl=signer.ttl)[0] for g in grants]


def exchange_request(client_id: str, client_secret: str, subject_token: str, txn: bool = False) -> bytes:
    """ExchangeToken (RFC 8693) of a service's token: a delegated access token
    for billing, or (``txn``) a Txn-Token for the trust domain."""
    credential = pb.ClientCredential(client_id=client_id, client_secret=client_secret)
    if txn:
        return pb.ExchangeTokenRequest(
            client=credential, subject_token=subject_token, audience=[TRUST_DOMAIN], scope=["orders.read"],
            requested_token_type=TXN_TOKEN_TYPE, request_details='{"order": 1}',
        ).SerializeToString()
    return pb.ExchangeTokenRequest(
        client=credential, subject_token=subject_token, audience=[EXCHANGE_AUDIENCE]
    ).SerializeToString()


def verify_request(token: str) -> bytes:
    return pb.VerifyRequest(token=token, audience=AUDIENCE, required_scope=["read"]).SerializeToString()


def check_request(token: str) -> bytes:
    """What Envoy's ext_authz filter sends for ``GET /orders/42`` with this
    token: the peers, the request's headers and the route's context_extensions."""
    address = attrs.AttributeContext.Peer
    headers = {
        ":authority": "orders.example", ":method": "GET", ":path": "/orders/42", ":scheme": "https",
        "accept": "application/json", "authorization": f"Bearer {token}", "user-agent": "bench/1.0",
        "x-forwarded-proto": "https", "x-request-id": str(uuid.uuid4()),
    }  # fmt: skip
    return ext.CheckRequest(
        attributes=attrs.AttributeContext(
            source=address(address={"socket_address": {"address": "10.0.0.7", "port_value": 51234}}),
            destination=address(address={"socket_address": {"address": "10.0.0.2", "port_value": 8443}}),
            request=attrs.AttributeContext.Request(
                http=attrs.AttributeContext.HttpRequest(
                    id="1234567890", method="GET", headers=headers, path="/orders/42", host="orders.example",
                    scheme="https", protocol="HTTP/2",
                )
            ),
            context_extensions={"audience": AUDIENCE, "scope": "read"},
        )
    ).SerializeToString()


def revoke_request(token: str) -> bytes:
    return pb.RevokeRequest(token=token).SerializeToString()


def refresh_request(refresh_token: str) -> bytes:
    return pb.RefreshRequest(refresh_token=refresh_token).SerializeToString()


def login_request(username: str) -> bytes:
    return pb.IssueRequest(password=pb.PasswordCredential(username=username, password=PASSWORD)).SerializeToString()


@dataclass
class Cycle:
    """The same few prepared requests over and over (a hot set, or an empty RPC)."""

    bodies: list[bytes]
    expect: bytes = b""  # what every answer starts with
    wrapped: int = 0
    _next: int = 0

    def prepare(self) -> None:
        pass

    def request(self, slot: int) -> bytes:
        self._next = (self._next + 1) % len(self.bodies)
        return self.bodies[self._next]

    def response(self, slot: int, data: bytes) -> bool:
        return data.startswith(self.expect)


@dataclass
class Prepared:
    """Requests made beforehand, each sent once (the Python stand-in for h2grpc)."""

    bodies: list[bytes]
    expect: bytes = b""
    wrapped: int = 0
    _next: int = 0

    def prepare(self) -> None:
        pass

    def request(self, slot: int) -> bytes:
        if self._next >= len(self.bodies):
            self.wrapped += 1
        body = self.bodies[self._next % len(self.bodies)]
        self._next += 1
        return body

    def response(self, slot: int, data: bytes) -> bool:
        return data.startswith(self.expect)
