"""The audit log, paged for the AdminService (newest first).

Reads the existing audit table through the admin port until the audit
chain's own query (domain/audit) lands; the answer's shape stays the same.
"""

from __future__ import annotations

from authsvc.domain import validate
from authsvc.domain.admin import paging
from authsvc.domain.admin.authz import authorize
from authsvc.domain.admin.ports import AuditFilter, AuditRecord
from authsvc.domain.deps import Deps
from authsvc.domain.models import CallInfo
from authsvc.errors import InvalidArgument

_NEWEST = 2**63 - 1


def actor_of(record: AuditRecord) -> str:
    """Who acted, as the use cases write it into the detail ("actor=kind:id")."""
    for part in record.detail.split():
        if part.startswith("actor="):
            return part[len("actor=") :]
    return ""


async def query(
    deps: Deps, bearer: str | None, call: CallInfo, where: AuditFilter, page_size: int, page_token: str
) -> paging.Page[AuditRecord]:
    if where.subject:
        validate.text(where.subject, "subject")
    if where.event:
        validate.text(where.event, "event")
    if where.since is not None and where.until is not None and where.until < where.since:
        raise InvalidArgument("until must not be before since")
    limit, position = paging.size(page_size), paging.decode(page_token)
    if position and not position.isdigit():
        raise InvalidArgument("page_token is malformed")
    before = int(position) if position else _NEWEST
    if before > _NEWEST:
        raise InvalidArgument("page_token is malformed")
    await authorize(deps, bearer, call, "QueryAudit", where.subject)
    rows = await deps.store.audit_before(before, limit + 1, where)
    return paging.page(rows, limit, str(rows[limit - 1].id) if len(rows) > limit else "")
