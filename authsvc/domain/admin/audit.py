"""The audit trail, paged for the AdminService, newest first: the same query
as ``authsvc audit list`` (domain/audit/query.py)."""

from __future__ import annotations

from authsvc.domain import validate
from authsvc.domain.admin.authz import authorize
from authsvc.domain.audit.query import AuditFilter, AuditPage
from authsvc.domain.audit.query import query as trail_query
from authsvc.domain.deps import Deps
from authsvc.domain.models import CallInfo
from authsvc.errors import InvalidArgument


async def query(
    deps: Deps, bearer: str | None, call: CallInfo, where: AuditFilter, page_size: int, page_token: str
) -> AuditPage:
    for value, name in ((where.subject, "subject"), (where.type, "event"), (where.actor, "actor")):
        if value:
            validate.text(value, name)
    if where.since is not None and where.until is not None and where.until < where.since:
        raise InvalidArgument("until must not be before since")
    await authorize(deps, bearer, call, "QueryAudit", where.subject)
    return await trail_query(deps.store, where, page_token, page_size, newest_first=True)
