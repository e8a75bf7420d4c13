"""authsvc: the gRPC token service that internal services trust."""

__version__ = "0.1.0"
