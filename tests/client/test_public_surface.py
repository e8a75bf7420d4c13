"""The client package's public names are the ones we meant (as httpx's
tests/test_exported_members.py), and it never reaches into the server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import authsvc_client

PACKAGE = Path(authsvc_client.__file__).parent

EXPECTED = [
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


def test_all_is_exactly_the_public_surface():
    assert authsvc_client.__all__ == EXPECTED


def test_every_exported_name_exists_and_nothing_public_is_unexported():
    for name in authsvc_client.__all__:
        assert hasattr(authsvc_client, name), name
    public = {
        name
        for name, value in vars(authsvc_client).items()
        if not name.startswith("_") and not (getattr(value, "__name__", "").startswith("authsvc_client._"))
    }
    assert public <= set(EXPECTED), public - set(EXPECTED)


def test_exported_classes_say_where_they_come_from():
    # Defined in private modules, exported only through __init__ (httpx style).
    for name in EXPECTED:
        value = getattr(authsvc_client, name)
        module = getattr(value, "__module__", None)
        if isinstance(value, type) and module is not None:
            assert module.startswith("authsvc_client._"), (name, module)


def test_error_tree():
    from authsvc_client import (
        AuthsvcError,
        InvalidCredentials,
        PermissionDenied,
        ReauthRequired,
        Throttled,
        Unavailable,
        VerifierUnavailable,
    )

    for cls in (InvalidCredentials, PermissionDenied, ReauthRequired, Throttled, Unavailable):
        assert issubclass(cls, AuthsvcError)
    assert issubclass(VerifierUnavailable, Unavailable)


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_no_module_of_the_package_imports_the_server():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(m for m in _imported_modules(p) if m.split(".")[0] == "authsvc")
        for p in sources
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_package_loads_nothing_of_the_server():
    # A fresh interpreter: what does `import authsvc_client` (and every
    # private module) pull in?
    probe = (
        "import sys, pkgutil, importlib, authsvc_client\n"
        "for m in pkgutil.walk_packages(authsvc_client.__path__, 'authsvc_client.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n == 'authsvc' or n.startswith('authsvc.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
