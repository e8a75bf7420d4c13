"""Proto <-> domain conversions, and what the transport says about a caller."""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeAlias

import grpc
from cryptography import x509
from google.protobuf.timestamp_pb2 import Timestamp

from authsvc import telemetry
from authsvc.domain import validate
from authsvc.domain.models import CallInfo, MfaChallengeIssued, Revocation, Session, TokenPair
from authsvc.domain.tokens.exchange import Exchanged, ExchangeRequest
from authsvc.doors import peer_cert
from authsvc.errors import BearerMalformed, InvalidArgument
from authsvc_client import AccessClaims, Reason, Requirements, pb
from authsvc_client._models import actor_message

_MAX_USER_AGENT = 256
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def _metadata(context: Context, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return None


def call_info(context: Context) -> CallInfo:
    thumbprint, san_uris = peer_certificate(context)
    return CallInfo(
        peer=context.peer() or "",
        user_agent=(_metadata(context, "user-agent") or "")[:_MAX_USER_AGENT],
        cert_thumbprint=thumbprint,
        cert_san_uris=san_uris,
        request_id=request_id(context),
        trace_id=telemetry.current_trace_id(),
    )


def request_id(context: Context) -> str:
    """The caller's ``x-request-id`` when it is a sane token, else a new one:
    it ties the log line of the call to its audit rows."""
    given = _metadata(context, "x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def peer_certificate(context: Context) -> tuple[str, tuple[str, ...]]:
    """The peer's verified client certificate, as :func:`certificate_identity`
    gives it. Empty without mTLS."""
    pem = next(iter(context.auth_context().get("x509_pem_cert", ())), None)
    return ("", ()) if pem is None else certificate_identity(pem)


def certificate_identity(pem: bytes) -> tuple[str, tuple[str, ...]]:
    """A PEM certificate as (base64url SHA-256 of its DER, RFC 8705 section
    3.1; its URI SANs), by peer_cert.py, which the HTTP door (DER from its
    TLS connection) shares: the gRPC port's own mTLS and the certificate
    Envoy passes in a Check.
    Raises ValueError when ``pem`` is not a certificate."""
    return peer_cert.identity(x509.load_pem_x509_certificate(pem))


def bearer(context: Context) -> str | None:
    """The bearer token (RFC 6750 section 2.1), or None when there is no
    ``authorization`` metadata; anything else there is refused as malformed."""
    value = _metadata(context, "authorization")
    if value is None:
        return None
    token = bearer_token(value.strip())
    if not token:  # another scheme, no "Bearer " prefix, or nothing after it
        raise BearerMalformed()
    return token


def bearer_token(value: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (RFC 6750
    section 2.1; the scheme is case-insensitive), else None."""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def requirements(
    audience: str, scopes: tuple[str, ...], thumbprint: str, max_age: int, require_encrypted: bool = False,
    max_depth: int | None = None,
) -> Requirements:
    """What a caller requires of a token, checked as any input is: Verify's
    fields and a Check's route settings alike."""
    if not audience:
        raise InvalidArgument("audience is required")
    validate.text(audience, "audience")
    if scopes:
        validate.names(scopes, "required_scope")
    if len(thumbprint) > 128:
        raise InvalidArgument("cert_thumbprint is too long")
    if max_age < 0:
        raise InvalidArgument("max_auth_age_seconds must not be negative")
    if max_depth is not None and max_depth < 0:
        raise InvalidArgument("max_delegation_depth must not be negative")
    return Requirements(
        audience=audience, scopes=scopes, cert_thumbprint=thumbprint, max_auth_age=max_age,
        require_encrypted=require_encrypted, max_delegation_depth=max_depth,
    )  # fmt: skip


def token_pair(pair: TokenPair) -> pb.TokenPair:
    return pb.TokenPair(
        access_token=pair.access_token,
        token_type="Bearer",  # noqa: S106 - a token type, not a password
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        scope=list(pair.scopes),
        session_id=pair.session_id,
    )


def timestamp(epoch: float | None) -> Timestamp | None:
    if epoch is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(epoch * 1e9))
    return ts


def mfa_challenge(challenge: MfaChallengeIssued) -> pb.MFAChallenge:
    return pb.MFAChallenge(
        challenge_id=challenge.challenge_id,
        methods=list(challenge.methods),
        expires_at=timestamp(challenge.expires_at),
    )


def session_info(s: Session) -> pb.SessionInfo:
    return pb.SessionInfo(
        session_id=s.id, subject=s.subject, audience=list(s.audiences), scope=list(s.scopes), amr=list(s.amr),
        auth_time=timestamp(s.auth_time), created_at=timestamp(s.created_at), expires_at=timestamp(s.expires_at),
        last_refresh_at=timestamp(s.last_refresh_at), refresh_count=s.refresh_count, peer=s.peer,
        user_agent=s.user_agent, revoked_at=timestamp(s.revoked_at),
    )  # fmt: skip


_KINDS = {
    "jti": pb.RevocationEvent.KIND_JTI,
    "session": pb.RevocationEvent.KIND_SESSION,
    "subject": pb.RevocationEvent.KIND_SUBJECT,
    "key": pb.RevocationEvent.KIND_KEY,
}


def revocation_event(entry: Revocation, resume_cursor: int) -> pb.RevocationEvent:
    return pb.RevocationEvent(
        seq=entry.seq,
        kind=_KINDS[entry.kind],
        value=entry.value,
        revoked_at=timestamp(entry.revoked_at),
        expires_at=timestamp(entry.expires_at),
        resume_cursor=resume_cursor,
    )


def claims(c: AccessClaims) -> pb.Claims:
    return pb.Claims(
        iss=c.iss, sub=c.sub, aud=list(c.aud), exp=c.exp, iat=c.iat, nbf=c.nbf, jti=c.jti,
        client_id=c.client_id, scope=list(c.scope), sid=c.sid, auth_time=c.auth_time,
        amr=list(c.amr), acr=c.acr, cnf_x5t_s256=c.cnf_x5t_s256,
        act=actor_message(c.act) if c.act is not None else None,
    )  # fmt: skip


def exchange_request(m: pb.ExchangeTokenRequest) -> ExchangeRequest:
    return ExchangeRequest(
        client_id=m.client.client_id, client_secret=m.client.client_secret, subject_token=m.subject_token,
        subject_token_type=m.subject_token_type, audiences=tuple(m.audience), scopes=tuple(m.scope),
        requested_token_type=m.requested_token_type, request_context=m.request_context,
        request_details=m.request_details, purpose=m.purpose,
    )  # fmt: skip


def exchanged(e: Exchanged) -> pb.ExchangeTokenResponse:
    return pb.ExchangeTokenResponse(
        access_token=e.token, issued_token_type=e.issued_token_type, token_type=e.token_type,
        expires_in=e.expires_in, scope=list(e.scopes),
    )  # fmt: skip


def inactive(reason: Reason) -> pb.VerifyResponse:
    return pb.VerifyResponse(active=False, reason=reason.value)  # type: ignore[arg-type]
