"""The side port's certificate follows its files, as the gRPC port's does:
replaced on disk, it is served from the next connections on, without a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl

from cryptography import x509

from authsvc.config import TlsFiles
from authsvc.server import App

from ..support import FakeClock
from ..tlsutil import Issued, TestCA
from .conftest import Pki


def served_certificate(port: int, pki: Pki) -> x509.Certificate:
    context = pki.client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(
        raw, server_hostname="localhost"
    ) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def test_a_new_certificate_on_disk_is_served_without_a_restart(settings, database_url, pki, tmp_path):
    cert, key = pki.ca.write(tmp_path, pki.server, "server")
    tuned = dataclasses.replace(settings, tls=TlsFiles(cert=cert, key=key), http_listen="127.0.0.1:0")
    async with App(tuned, database_url, clock=FakeClock()) as app:
        first = await asyncio.to_thread(served_certificate, app.http_port, pki)
        assert first.serial_number == x509.load_pem_x509_certificate(pki.server.cert_pem).serial_number

        # Half a rotation (a new certificate, the old key) is not taken...
        renewed = pki.ca.issue("authsvc-renewed", server=True)
        cert.write_bytes(renewed.cert_pem)
        assert app.http is not None
        assert await app.http.reload_tls() is False
        assert app.http.tls_reloads == 0
        assert (await asyncio.to_thread(served_certificate, app.http_port, pki)).serial_number == first.serial_number

        # ...the whole of it is, by the watcher that looks once a second.
        key.write_bytes(renewed.key_pem)
        for _ in range(50):
            if app.http.tls_reloads:
                break
            await asyncio.sleep(0.1)
        now = await asyncio.to_thread(served_certificate, app.http_port, pki)
        assert now.serial_number == x509.load_pem_x509_certificate(renewed.cert_pem).serial_number


def answered(port: int, pki: Pki, client: Issued, directory) -> bool:
    """Whether a request over TLS with ``client``'s certificate gets an answer.
    A refused certificate ends the connection: in TLS 1.3 the server checks it
    after the client's side of the handshake is done, so the refusal shows as
    an alert or a closed connection at the first read."""
    context = pki.client_context()
    cert, key = pki.ca.write(directory, client, "client")
    context.load_cert_chain(cert, key)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(
            raw, server_hostname="localhost"
        ) as tls:
            tls.sendall(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return tls.recv(64).startswith(b"HTTP/1.1 200")
    except (ssl.SSLError, ConnectionError):
        return False


async def test_a_client_ca_dropped_from_the_file_is_no_longer_trusted(settings, database_url, pki, tmp_path):
    """Review finding: the side port went on trusting a CA that the operator had
    removed (ssl can add a CA to a live context, not drop one), so a certificate
    of a retired or compromised CA still passed tls_client_auth."""
    cert, key = pki.ca.write(tmp_path, pki.server, "server")
    retired = TestCA("retired CA")
    bundle = tmp_path / "clients.crt"
    bundle.write_bytes(pki.ca.pem + retired.pem)
    tls = TlsFiles(cert=cert, key=key, client_ca=bundle)
    async with App(dataclasses.replace(settings, tls=tls, http_listen="127.0.0.1:0"), database_url,
                   clock=FakeClock()) as app:  # fmt: skip
        assert app.http is not None
        old = retired.issue("old-client", uri="spiffe://oauth.test.example/ns/prod/sa/old")
        assert await asyncio.to_thread(answered, app.http_port, pki, old, tmp_path)  # trusted while listed
        bundle.write_bytes(pki.ca.pem)  # the operator drops the retired CA
        assert await app.http.reload_tls() is True
        assert not await asyncio.to_thread(answered, app.http_port, pki, old, tmp_path)
        current = pki.ca.issue("new-client", uri="spiffe://oauth.test.example/ns/prod/sa/new")
        assert await asyncio.to_thread(answered, app.http_port, pki, current, tmp_path)  # the current CA still is
