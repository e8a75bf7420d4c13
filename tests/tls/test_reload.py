"""Certificates rotate under a live server: the listener rereads its
certificate, key and client CA at each TLS handshake (grpcio's dynamic server
credentials), so short-lived certificates need no restart. A live mTLS
channel keeps working through a rotation of the server certificate and of
the CA that signs client certificates."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authsvc.config import TlsFiles
from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import FakeClock
from ..tlsutil import Issued, TestCA

STOP_TIMEOUT = 60.0


@dataclasses.dataclass
class Files:
    directory: Path
    tls: TlsFiles

    def put(self, server: Issued | None = None, client_cas: tuple[TestCA, ...] = ()) -> None:
        """Replace files as a rotation agent does: write aside, then rename."""
        writes: list[tuple[Path, bytes]] = []
        if server is not None:
            writes += [(self.tls.cert, server.cert_pem), (self.tls.key, server.key_pem)]
        if client_cas:
            assert self.tls.client_ca is not None
            writes.append((self.tls.client_ca, b"".join(ca.pem for ca in client_cas)))
        for path, data in writes:
            aside = path.with_suffix(".new")
            aside.write_bytes(data)
            aside.replace(path)


@pytest.fixture
async def rotating(settings, database_url, tmp_path) -> AsyncIterator[tuple[App, Files, TestCA]]:
    old_ca = TestCA("old CA")
    files = Files(tmp_path, TlsFiles(tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "clients.pem"))
    files.put(old_ca.issue("authsvc", server=True), (old_ca,))
    app = App(dataclasses.replace(settings, tls=files.tls), database_url, clock=FakeClock())
    await app.start()
    yield app, files, old_ca
    try:  # bounded, and saying where it stuck: one full-suite run once hung here
        await asyncio.wait_for(app.stop(), STOP_TIMEOUT)
    except TimeoutError:
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            task.print_stack(file=stacks)
        pytest.fail(f"App.stop did not finish in {STOP_TIMEOUT}s; tasks:\n{stacks.getvalue()}")


def channel(app: App, roots: tuple[TestCA, ...], client: Issued) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=b"".join(ca.pem for ca in roots),
        private_key=client.key_pem,
        certificate_chain=client.cert_pem,
    )
    # One connection per test channel: a new channel is a new handshake.
    return grpc.aio.secure_channel(f"localhost:{app.port}", creds, options=[("grpc.use_local_subchannel_pool", 1)])


async def jwks(ch: grpc.aio.Channel) -> str:
    return (await pb_grpc.AuthServiceStub(ch).GetJWKS(pb.GetJWKSRequest(), timeout=10)).jwks_json


async def refused(roots: tuple[TestCA, ...], client: Issued, app: App) -> None:
    async with channel(app, roots, client) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await jwks(ch)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_server_and_client_ca_rotate_under_a_live_mtls_client(rotating):
    app, files, old_ca = rotating
    new_ca = TestCA("new CA")
    old_client, new_client = old_ca.issue("billing"), new_ca.issue("billing-2")
    both = (old_ca, new_ca)
    async with channel(app, both, old_client) as live:
        assert await jwks(live)

        # 1. Trust the new CA beside the old one, and serve a certificate the new CA signed.
        files.put(new_ca.issue("authsvc", server=True), both)
        assert await jwks(live)  # the live connection is untouched
        async with channel(app, (new_ca,), new_client) as ch:  # a new handshake sees both changes
            assert await jwks(ch)
        await refused((old_ca,), old_client, app)  # a client that trusts only the old CA: the server moved on
        assert app.tls is not None and app.tls.reloads == 1

        # 2. Drop the old CA: a certificate it signed no longer gets in; the live channel stays.
        files.put(client_cas=(new_ca,))
        await refused(both, old_client, app)
        async with channel(app, (new_ca,), new_client) as ch:
            assert await jwks(ch)
        assert await jwks(live)
        assert app.tls.reloads == 2


async def test_a_half_written_rotation_keeps_the_current_certificate(rotating, caplog):
    app, files, old_ca = rotating
    client = old_ca.issue("billing")
    next_server = old_ca.issue("authsvc", server=True)
    # The certificate arrives before its key: the pair does not match yet.
    files.tls.cert.write_bytes(next_server.cert_pem)
    with caplog.at_level(logging.WARNING, logger="authsvc.doors.tls"):
        async with channel(app, (old_ca,), client) as ch:
            assert await jwks(ch)  # served with the previous, still whole, pair
    assert "not usable yet (the key does not belong to the certificate)" in caplog.text
    assert app.tls is not None and app.tls.reloads == 0
    files.tls.key.write_bytes(next_server.key_pem)  # the key follows: the next handshake switches
    async with channel(app, (old_ca,), client) as ch:
        assert await jwks(ch)
    assert app.tls.reloads == 1
    assert next_server.key_pem.decode() not in caplog.text

