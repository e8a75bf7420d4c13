"""The side port's TLS context, following its files as the gRPC port's
credentials do (doors/tls.py): a certificate and key replaced on disk are used
from the next handshake on. Checked once a second (Python's ssl has no
per-handshake hook for a listener without SNI).

With a client CA, a client certificate is asked for and verified when sent,
but not required: the public keys and the metadata must stay readable by
anyone, and a client that authenticates with a secret needs none. A new
client CA is added to the trusted set; one that left the file stays trusted
until a restart (ssl cannot drop a CA from a live context)."""

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
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self.context.load_cert_chain(cert, key)
        if client_ca is not None:
            self.context.load_verify_locations(cafile=client_ca)
            self.context.verify_mode = ssl.CERT_OPTIONAL
        self.reloads = 0

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
            self.context.load_cert_chain(self._paths[0], self._paths[1])
            if pem[2] is not None:
                self.context.load_verify_locations(cadata=pem[2].decode("ascii"))
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.warning("HTTP side port: TLS files changed but are not usable yet (%s): keeping the current ones", exc)
            return False
        self._pem = pem
        self.reloads += 1
        log.info("HTTP side port: TLS certificate, key or client CA changed on disk: reloaded for new connections")
        return True
