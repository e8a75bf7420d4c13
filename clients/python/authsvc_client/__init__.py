"""authsvc-client: what an internal service needs to use authsvc.

The generated stubs (``authsvc_client.pb``, ``authsvc_client.grpc``) and the
rules for accepting an access token, shared with authsvc's own Verify.
"""

from ._jose import SIGNING_ALGORITHMS
from ._keys import KeySet, VerificationKey
from ._proto import auth_pb2 as pb
from ._proto import auth_pb2_grpc as grpc
from ._verify import (
    DEFAULT_LEEWAY_SECONDS,
    MAX_TOKEN_LENGTH,
    AccessClaims,
    Reason,
    Requirements,
    TokenRejected,
    verify_access_token,
)

__all__ = [
    "DEFAULT_LEEWAY_SECONDS",
    "MAX_TOKEN_LENGTH",
    "SIGNING_ALGORITHMS",
    "AccessClaims",
    "KeySet",
    "Reason",
    "Requirements",
    "TokenRejected",
    "VerificationKey",
    "grpc",
    "pb",
    "verify_access_token",
]
