"""Single calls made before a run: each checks that the request a run will
repeat gets the answer it should, and gives the answer's size."""

from __future__ import annotations

import grpc

from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from .database import Principals


class Probe:
    def __init__(self, port: int) -> None:
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.AuthServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(None)

    async def raw(self, method: str, body: bytes) -> bytes:
        answer: bytes = await self._channel.unary_unary(method, None, None)(body, timeout=30)
        return answer

    async def jwks(self) -> str:
        return (await self.stub.GetJWKS(pb.GetJWKSRequest(), timeout=30)).jwks_json

    async def verify_active(self, body: bytes) -> int:
        """The size of Verify's answer to ``body``, which must be active."""
        answer = await self.raw("/authsvc.v1.AuthService/Verify", body)
        if not pb.VerifyResponse.FromString(answer).active:
            raise RuntimeError(f"probe: Verify says inactive: {pb.VerifyResponse.FromString(answer)}")
        return len(answer)

    async def issue_client(self, body: bytes) -> int:
        answer = await self.raw("/authsvc.v1.AuthService/Issue", body)
        if not pb.IssueResponse.FromString(answer).tokens.access_token:
            raise RuntimeError("probe: Issue with client credentials gave no token")
        return len(answer)

    async def revoke(self, token: str) -> int:
        return (await self.stub.Revoke(pb.RevokeRequest(token=token), timeout=120)).revoked


def client_issue_request(principals: Principals) -> bytes:
    credential = pb.ClientCredential(client_id=principals.client_id, client_secret=principals.client_secret)
    return pb.IssueRequest(client=credential).SerializeToString()
