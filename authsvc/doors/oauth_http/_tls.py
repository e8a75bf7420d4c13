"""The side port's TLS context, following its files as the gRPC port's
credentials do (doors/tls.py): a certificate, key or client CA replaced on
disk is used from the next handshake on. Checked once a second.

A changed file set is loaded into a new context, and the listener's own
context hands every handshake over to the newest one (its ``sni_callback``
runs for every ClientHello, with or without SNI, and sets the connection's
context). So a client CA that leaves the file stops being trusted, which
loading CAs into the live context could never do: ssl can add a CA to a
context, not drop one.

With a client CA, a client certificate is asked for and verified when sent,
but not required: the public keys and the metadata must stay readable by
anyone, and a client that authenticates with a secret needs none."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from authsvc.doors.tls import _check as check_pem

log = logging.getLogger(__name__)


class ReloadingContext:
    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self._paths = (cert, key, client_ca)
        self._pem = self._read()
        #: What new handshakes get; replaced whole when the files change.
        self.current = self._build()
        #: What the listener holds: each handshake switches to ``current``.
        self.context = self._build()
        self.context.sni_callback = self._switch
        self.reloads = 0

    def _build(self) -> ssl.SSLContext:
        cert, key, client_ca = self._paths
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.load_verify_locations(cafile=client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def _switch(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        connection.context = self.current

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        cert, key, ca = self._paths
        return cert.read_bytes(), key.read_bytes(), ca.read_bytes() if ca else None

    def reload(self) -> bool:
        """Take changed files, if they are consistent; True when it did."""
        try:
            pem = self._read()
            if pem == self._pem:
                return False
            check_pem(*pem)  # a certificate and key from two rotations: wait for the other file
            fresh = self._build()
            if self._read() != pem:
                return False  # changed again while loading: take it at the next check
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.warning("HTTP side port: TLS files changed but are not usable yet (%s): keeping the current ones", exc)
            return False
        self.current = fresh
        self._pem = pem
        self.reloads += 1
        log.info("HTTP side port: TLS certificate, key or client CA changed on disk: used for new connections")
        return True
