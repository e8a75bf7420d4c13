"""What a client certificate says about its holder, the same for every door
(gRPC hands us PEM, the HTTP server DER)."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def identity(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(base64url SHA-256 of the DER certificate, RFC 8705 section 3.1; its
    URI SANs, such as SPIFFE IDs)."""
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(sans.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = ()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), uris


def from_der(der: bytes | None) -> tuple[str, tuple[str, ...]]:
    """:func:`identity` of a DER certificate; empty without one."""
    return identity(x509.load_der_x509_certificate(der)) if der else ("", ())


def from_pem(pem: bytes | None) -> tuple[str, tuple[str, ...]]:
    """:func:`identity` of a PEM certificate; empty without one."""
    return identity(x509.load_pem_x509_certificate(pem)) if pem else ("", ())
