"""authsvc-client: what an internal service needs to use authsvc.

The generated stubs (``authsvc_client.pb``, ``authsvc_client.grpc``; the
operators' AdminService in ``authsvc_client.admin_pb``, ``admin_grpc``); the
rules for accepting an access token, shared with authsvc's own Verify;
:class:`AuthClient` and :class:`AsyncAuthClient` (one method per RPC);
:class:`TokenVerifier` (local verification with a revocation stream); server
interceptors that admit calls by token and scope; and call credentials that
keep a service's own token fresh.
"""

from ._aio_client import AsyncAuthClient
from ._client import DEFAULT_TIMEOUT, AuthClient
from ._credentials import AsyncClientCredentialsAuth, ClientCredentialsAuth
from ._errors import (
    AuthsvcError,
    InvalidCredentials,
    PermissionDenied,
    ReauthRequired,
    Throttled,
    Unavailable,
    VerifierUnavailable,
)
from ._interceptors import AsyncAuthServerInterceptor, AuthServerInterceptor, current_claims
from ._jose import SIGNING_ALGORITHMS
from ._keys import KeySet, VerificationKey
from ._models import (
    ClientCredential,
    ExchangedToken,
    MfaChallenge,
    MfaEnrolment,
    PasswordCredential,
    RevocationEvent,
    SessionInfo,
    TokenPair,
    VerifyResult,
)
from ._proto import admin_pb2 as admin_pb
from ._proto import admin_pb2_grpc as admin_grpc
from ._proto import auth_pb2 as pb
from ._proto import auth_pb2_grpc as grpc
from ._retry import RetryPolicy
from ._txn import TXN_TOKEN_TYPE, TxnClaims, TxnRequirements, verify_txn_token
from ._txn_interceptors import (
    TXN_TOKEN_METADATA,
    AsyncTxnTokenServerInterceptor,
    TxnTokenForwarder,
    TxnTokenServerInterceptor,
    async_txn_token_forwarders,
    current_txn,
    current_txn_token,
    use_txn_token,
)
from ._verifier import TokenVerifier, VerifierStats
from ._verify import (
    DEFAULT_LEEWAY_SECONDS,
    MAX_TOKEN_LENGTH,
    AccessClaims,
    Actor,
    Reason,
    Requirements,
    TokenRejected,
    verify_access_token,
)

__all__ = [
    "DEFAULT_LEEWAY_SECONDS",
    "DEFAULT_TIMEOUT",
    "MAX_TOKEN_LENGTH",
    "SIGNING_ALGORITHMS",
    "TXN_TOKEN_METADATA",
    "TXN_TOKEN_TYPE",
    "AccessClaims",
    "Actor",
    "AsyncAuthClient",
    "AsyncAuthServerInterceptor",
    "AsyncClientCredentialsAuth",
    "AsyncTxnTokenServerInterceptor",
    "AuthClient",
    "AuthServerInterceptor",
    "AuthsvcError",
    "ClientCredential",
    "ClientCredentialsAuth",
    "ExchangedToken",
    "InvalidCredentials",
    "KeySet",
    "MfaChallenge",
    "MfaEnrolment",
    "PasswordCredential",
    "PermissionDenied",
    "Reason",
    "ReauthRequired",
    "Requirements",
    "RetryPolicy",
    "RevocationEvent",
    "SessionInfo",
    "Throttled",
    "TokenPair",
    "TokenRejected",
    "TokenVerifier",
    "TxnClaims",
    "TxnRequirements",
    "TxnTokenForwarder",
    "TxnTokenServerInterceptor",
    "Unavailable",
    "VerificationKey",
    "VerifierStats",
    "VerifierUnavailable",
    "VerifyResult",
    "admin_grpc",
    "admin_pb",
    "async_txn_token_forwarders",
    "current_claims",
    "current_txn",
    "current_txn_token",
    "grpc",
    "pb",
    "use_txn_token",
    "verify_access_token",
    "verify_txn_token",
]
