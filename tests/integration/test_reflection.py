"""Server reflection is on by default (grpcurl needs no proto files) and off
with AUTHSVC_REFLECTION=false, for deployments that publish no schema."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import FakeClock


async def services(port: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in stub.ServerReflectionInfo(iter([request]), timeout=10):
            return [s.name for s in answer.list_services_response.service]
    raise AssertionError("no reflection answer")


async def test_reflection_lists_the_services_by_default(app):
    assert "authsvc.v1.AuthService" in await services(app.port)


async def test_reflection_can_be_turned_off(settings, database_url):
    quiet = dataclasses.replace(settings, reflection=False)
    async with App(quiet, database_url, clock=FakeClock()) as app:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await services(app.port)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:  # the API itself still answers
            assert (await pb_grpc.AuthServiceStub(ch).GetJWKS(pb.GetJWKSRequest())).jwks_json
