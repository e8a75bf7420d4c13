"""Listener credentials that follow their files: a certificate, key or client
CA replaced on disk is used from the next TLS handshake on, without a
restart, so short-lived certificates (hourly SPIFFE SVIDs, cert-manager
renewals) work. grpcio calls the fetcher at every handshake; connections
already open keep what they were made with."""

from __future__ import annotations

import logging
import threading

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from authsvc.config import ConfigError, TlsFiles

log = logging.getLogger(__name__)

Pem = tuple[bytes, bytes, bytes | None]


def _check(cert: bytes, key: bytes, ca: bytes | None) -> None:
    """Refuse a set of files that would fail every handshake: above all a
    certificate and key from two different rotations (one file written, the
    other not yet)."""
    leaf = x509.load_pem_x509_certificate(cert)  # the first of the chain
    private = load_pem_private_key(key, password=None)
    der = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*der) != private.public_key().public_bytes(*der):
        raise ValueError("the key does not belong to the certificate")
    if ca is not None and not x509.load_pem_x509_certificates(ca):
        raise ValueError("the client CA file holds no certificate")


class ReloadingCredentials:
    """Server credentials that reread ``files`` at each handshake and switch
    when they changed and are consistent; until then the last good set stays."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        try:
            self._current = files.read()
            _check(*self._current)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"AUTHSVC_TLS_CERT, AUTHSVC_TLS_KEY: cannot use them ({exc})") from exc
        self.reloads = 0

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self._current),
            self._fetch,  # type: ignore[arg-type]  # grpc-stubs omit the None that grpcio's contract allows
            require_client_authentication=self._files.client_ca is not None,
        )

    @staticmethod
    def _configuration(pem: Pem) -> grpc.ServerCertificateConfiguration:
        cert, key, ca = pem
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """None keeps the configuration in use (grpcio's contract)."""
        try:
            with self._lock:  # handshakes run on grpc's threads
                try:
                    pem = self._files.read()
                except OSError:
                    return None  # a file mid-replace: the next handshake looks again
                if pem == self._current:
                    return None
                try:
                    _check(*pem)
                except ValueError as exc:
                    log.warning("TLS files changed but are not usable yet (%s): keeping the current ones", exc)
                    return None
                self._current = pem
                self.reloads += 1
            log.info("TLS certificate, key or client CA changed on disk: reloaded for new connections")
            return self._configuration(pem)
        except Exception:  # nothing may escape into grpc's handshake
            log.exception("reloading the TLS files failed: keeping the current ones")
            return None

