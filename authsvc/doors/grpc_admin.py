"""authsvc.admin.v1.AdminService: parse, call one use case, convert, return.

Who may call is decided in the domain (domain/admin/authz.py), from the
bearer token; errors map to statuses as for AuthService (the same ``rpc``).
"""

from __future__ import annotations

from authsvc.domain.admin import audit, clients, keys, sessions, users
from authsvc.domain.deps import Deps
from authsvc.domain.models import CallInfo
from authsvc.doors import admin_convert as ac
from authsvc.doors import convert
from authsvc.doors.convert import Context
from authsvc.doors.grpc_status import rpc
from authsvc.metrics import Metrics
from authsvc_client import admin_grpc, admin_pb, pb

SERVICE = admin_pb.DESCRIPTOR.services_by_name["AdminService"]
MESSAGES = admin_pb


def _caller(context: Context) -> tuple[str | None, CallInfo]:
    return convert.bearer(context), convert.call_info(context)


class AdminServicer(admin_grpc.AdminServiceServicer):
    def __init__(self, deps: Deps, metrics: Metrics | None = None) -> None:
        self._deps = deps
        self._metrics = metrics or Metrics()

    # users -------------------------------------------------------------------

    @rpc
    async def CreateUser(self, request: admin_pb.CreateUserRequest, context: Context) -> admin_pb.User:
        r = request
        created = await users.create_user(
            self._deps, *_caller(context), r.username, r.password, list(r.scope), list(r.audience)
        )
        return ac.user(created)

    @rpc
    async def GetUser(self, request: admin_pb.GetUserRequest, context: Context) -> admin_pb.User:
        return ac.user(await users.get_user(self._deps, *_caller(context), request.id, request.username))

    @rpc
    async def ListUsers(self, request: admin_pb.ListUsersRequest, context: Context) -> admin_pb.ListUsersResponse:
        page = await users.list_users(self._deps, *_caller(context), request.page_size, request.page_token)
        return admin_pb.ListUsersResponse(users=[ac.user(u) for u in page.items], next_page_token=page.next_token)

    @rpc
    async def DisableUser(
        self, request: admin_pb.DisableUserRequest, context: Context
    ) -> admin_pb.UserChangeResponse:
        count = await users.set_disabled(self._deps, *_caller(context), request.id, True)
        return admin_pb.UserChangeResponse(sessions_revoked=count)

    @rpc
    async def EnableUser(self, request: admin_pb.EnableUserRequest, context: Context) -> admin_pb.UserChangeResponse:
        count = await users.set_disabled(self._deps, *_caller(context), request.id, False)
        return admin_pb.UserChangeResponse(sessions_revoked=count)

    @rpc
    async def DeleteUser(self, request: admin_pb.DeleteUserRequest, context: Context) -> admin_pb.UserChangeResponse:
        count = await users.delete_user(self._deps, *_caller(context), request.id)
        return admin_pb.UserChangeResponse(sessions_revoked=count)

    @rpc
    async def SetPassword(
        self, request: admin_pb.SetPasswordRequest, context: Context
    ) -> admin_pb.UserChangeResponse:
        count = await users.set_password(self._deps, *_caller(context), request.id, request.password)
        return admin_pb.UserChangeResponse(sessions_revoked=count)

    @rpc
    async def ResetMFA(self, request: admin_pb.ResetMFARequest, context: Context) -> admin_pb.UserChangeResponse:
        count = await users.reset_mfa(self._deps, *_caller(context), request.id)
        return admin_pb.UserChangeResponse(sessions_revoked=count)

    # clients -----------------------------------------------------------------

    @rpc
    async def CreateClient(
        self, request: admin_pb.CreateClientRequest, context: Context
    ) -> admin_pb.CreateClientResponse:
        r = request
        client, secret = await clients.create_client(
            self._deps, *_caller(context), r.name, list(r.scope), list(r.audience), r.tls_san_uri, r.tls_thumbprint
        )
        return admin_pb.CreateClientResponse(client=ac.client(client), client_secret=secret)

    @rpc
    async def ListClients(
        self, request: admin_pb.ListClientsRequest, context: Context
    ) -> admin_pb.ListClientsResponse:
        page = await clients.list_clients(self._deps, *_caller(context), request.page_size, request.page_token)
        return admin_pb.ListClientsResponse(
            clients=[ac.client(c) for c in page.items], next_page_token=page.next_token
        )

    @rpc
    async def DisableClient(self, request: admin_pb.DisableClientRequest, context: Context) -> admin_pb.Client:
        return ac.client(await clients.set_disabled(self._deps, *_caller(context), request.client_id, True))

    @rpc
    async def EnableClient(self, request: admin_pb.EnableClientRequest, context: Context) -> admin_pb.Client:
        return ac.client(await clients.set_disabled(self._deps, *_caller(context), request.client_id, False))

    @rpc
    async def RotateClientSecret(
        self, request: admin_pb.RotateClientSecretRequest, context: Context
    ) -> admin_pb.RotateClientSecretResponse:
        overlap = request.overlap_seconds if request.HasField("overlap_seconds") else None
        client, secret = await clients.rotate_secret(self._deps, *_caller(context), request.client_id, overlap)
        return admin_pb.RotateClientSecretResponse(client=ac.client(client), client_secret=secret)

    @rpc
    async def DeleteClient(
        self, request: admin_pb.DeleteClientRequest, context: Context
    ) -> admin_pb.DeleteClientResponse:
        await clients.delete_client(self._deps, *_caller(context), request.client_id)
        return admin_pb.DeleteClientResponse()

    # sessions ----------------------------------------------------------------

    @rpc
    async def ListSessions(self, request: admin_pb.ListSessionsRequest, context: Context) -> pb.ListSessionsResponse:
        found = await sessions.list_sessions(
            self._deps, *_caller(context), request.subject, request.include_revoked
        )
        return pb.ListSessionsResponse(sessions=[convert.session_info(s) for s in found])

    @rpc
    async def RevokeSessions(self, request: admin_pb.RevokeSessionsRequest, context: Context) -> pb.RevokeResponse:
        count = await sessions.revoke_sessions(
            self._deps, *_caller(context), request.session_id, request.subject
        )
        return pb.RevokeResponse(revoked=count)

    # keys --------------------------------------------------------------------

    @rpc
    async def ListKeys(self, request: admin_pb.ListKeysRequest, context: Context) -> admin_pb.ListKeysResponse:
        found = await keys.list_keys(self._deps, *_caller(context))
        return admin_pb.ListKeysResponse(keys=[ac.key(k) for k in found])

    @rpc
    async def RotateKey(self, request: admin_pb.RotateKeyRequest, context: Context) -> admin_pb.RotateKeyResponse:
        done = await keys.rotate_key(self._deps, *_caller(context), request.force)
        return admin_pb.RotateKeyResponse(retired_kid=done.retired, activated_kid=done.activated)

    @rpc
    async def RevokeKey(self, request: admin_pb.RevokeKeyRequest, context: Context) -> admin_pb.RevokeKeyResponse:
        await keys.revoke_key(self._deps, *_caller(context), request.kid)
        return admin_pb.RevokeKeyResponse()

    # audit -------------------------------------------------------------------

    @rpc
    async def QueryAudit(self, request: admin_pb.QueryAuditRequest, context: Context) -> admin_pb.QueryAuditResponse:
        page = await audit.query(
            self._deps, *_caller(context), ac.audit_filter(request), request.page_size, request.page_token
        )
        return admin_pb.QueryAuditResponse(
            events=[ac.audit_event(e) for e in page.entries], next_page_token=page.next_page_token
        )
