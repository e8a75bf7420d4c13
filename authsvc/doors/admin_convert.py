"""AdminService messages <-> domain records."""

from __future__ import annotations

from authsvc.domain.audit.query import AuditEntry, AuditFilter
from authsvc.domain.models import Client, StoredKey, User
from authsvc.doors.convert import timestamp
from authsvc_client import admin_pb


def user(u: User) -> admin_pb.User:
    return admin_pb.User(
        id=u.id, username=u.username, scope=list(u.scopes), audience=list(u.audiences),
        disabled=u.disabled, mfa_enrolled=u.mfa_enrolled, created_at=timestamp(u.created_at),
    )  # fmt: skip


def client(c: Client) -> admin_pb.Client:
    return admin_pb.Client(
        client_id=c.id, name=c.name, scope=list(c.scopes), audience=list(c.audiences), disabled=c.disabled,
        tls_san_uri=c.tls_san_uri or "", tls_thumbprint=c.tls_thumbprint or "", created_at=timestamp(c.created_at),
        previous_secret_expires_at=timestamp(c.previous_secret_expires_at),
    )  # fmt: skip


def key(k: StoredKey) -> admin_pb.Key:
    return admin_pb.Key(
        kid=k.kid, alg=k.alg, state=k.state, created_at=timestamp(k.created_at),
        activated_at=timestamp(k.activated_at), retired_at=timestamp(k.retired_at),
    )  # fmt: skip


def audit_filter(r: admin_pb.QueryAuditRequest) -> AuditFilter:
    return AuditFilter(
        subject=r.subject,
        type=r.event,
        actor=r.actor,
        since=r.since.ToNanoseconds() / 1e9 if r.HasField("since") else None,
        until=r.until.ToNanoseconds() / 1e9 if r.HasField("until") else None,
    )


def audit_event(entry: AuditEntry) -> admin_pb.AuditEvent:
    e = entry.event
    return admin_pb.AuditEvent(
        seq=entry.seq, at=timestamp(e.at), event=e.event, outcome=e.outcome, actor=e.actor, subject=e.subject,
        client_id=e.client_id, session_id=e.session_id, peer=e.peer, request_id=e.request_id,
        trace_id=e.trace_id, detail=e.detail,
    )  # fmt: skip
