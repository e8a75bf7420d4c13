"""``authsvc serve`` with workers refuses a port something listens on, and only that."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from authsvc.config import ConfigError
from authsvc.workers import check_port_free


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    # As grpc binds a port that workers share.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_a_port_with_a_listener_is_refused(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
        check_port_free(f"127.0.0.1:{port}")


def test_connections_of_a_stopped_server_do_not_hold_its_port(listener: socket.socket) -> None:
    # The server closes first (as a graceful stop does): its side of the
    # connection waits in TIME_WAIT, on the server's port, for a minute.
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()
    assert client.recv(1) == b""  # the server's FIN arrived
    client.close()
    listener.close()
    check_port_free(f"127.0.0.1:{port}")  # a restart may take the port at once
