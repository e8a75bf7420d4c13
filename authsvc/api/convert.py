"""Proto <-> domain conversions, and what the transport says about a caller."""

from __future__ import annotations

import base64
import hashlib

import grpc
from authsvc_client import AccessClaims, Reason, pb
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.timestamp_pb2 import Timestamp

from authsvc.domain.models import CallInfo, MfaChallengeIssued, TokenPair

_MAX_USER_AGENT = 256


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key and isinstance(item.value, str):
            return item.value
    return None


def call_info(context: grpc.aio.ServicerContext) -> CallInfo:
    return CallInfo(
        peer=context.peer() or "",
        user_agent=(_metadata(context, "user-agent") or "")[:_MAX_USER_AGENT],
        cert_thumbprint=cert_thumbprint(context),
    )


def cert_thumbprint(context: grpc.aio.ServicerContext) -> str:
    """base64url SHA-256 of the peer's DER certificate (RFC 8705 section 3.1)."""
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        return ""
    der = x509.load_pem_x509_certificate(pems[0]).public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def bearer(context: grpc.aio.ServicerContext) -> str | None:
    value = _metadata(context, "authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def token_pair(pair: TokenPair) -> pb.TokenPair:
    return pb.TokenPair(
        access_token=pair.access_token,
        token_type="Bearer",
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        scope=list(pair.scopes),
        session_id=pair.session_id,
    )


def mfa_challenge(challenge: MfaChallengeIssued) -> pb.MFAChallenge:
    expires = Timestamp()
    expires.FromNanoseconds(int(challenge.expires_at * 1e9))
    return pb.MFAChallenge(
        challenge_id=challenge.challenge_id, methods=list(challenge.methods), expires_at=expires
    )


def claims(c: AccessClaims) -> pb.Claims:
    return pb.Claims(
        iss=c.iss, sub=c.sub, aud=list(c.aud), exp=c.exp, iat=c.iat, nbf=c.nbf, jti=c.jti,
        client_id=c.client_id, scope=list(c.scope), sid=c.sid, auth_time=c.auth_time,
        amr=list(c.amr), acr=c.acr, cnf_x5t_s256=c.cnf_x5t_s256,
    )  # fmt: skip


def inactive(reason: Reason) -> pb.VerifyResponse:
    return pb.VerifyResponse(active=False, reason=reason.value)  # type: ignore[arg-type]
