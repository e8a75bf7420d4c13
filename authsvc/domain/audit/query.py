"""Reading the audit trail a page at a time (the CLI's ``audit list`` and the
AdminService's audit query both call ``query``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from authsvc.domain.audit.record import AuditEvent
from authsvc.errors import InvalidArgument

if TYPE_CHECKING:
    from authsvc.domain.ports import Store

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every field given must match; an empty one matches everything.
    ``type`` is the event name (``login_failed``, ``refresh``, ...);
    ``since`` (inclusive) and ``until`` (exclusive) are epoch seconds."""

    subject: str = ""
    type: str = ""
    actor: str = ""
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int  # the row's position in the chain: stable, unique, in commit order
    event: AuditEvent


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: tuple[AuditEntry, ...]
    #: Pass back for the next page; "" when this was the last one.
    next_page_token: str


async def query(
    store: Store,
    filters: AuditFilter = AuditFilter(),
    page_token: str = "",
    page_size: int = 0,
    *,
    newest_first: bool = False,
) -> AuditPage:
    """One page of events matching ``filters``, oldest first (or
    ``newest_first``). ``page_token`` is "" for the first page, else the
    ``next_page_token`` of the page before (opaque; the same filters and order
    must be passed with it). ``page_size`` 0 means 100; at most 1000.
    Raises InvalidArgument for a malformed token or size."""
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be between 0 and {MAX_PAGE_SIZE}")
    size = page_size or DEFAULT_PAGE_SIZE
    after = _read_token(page_token)
    rows = await store.audit_page(filters, after, size + 1, newest_first)
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(tuple(rows), f"s{rows[-1].seq}" if more else "")


def _read_token(token: str) -> int | None:
    if not token:
        return None
    if len(token) > 24 or not token.startswith("s") or not token[1:].isdigit():
        raise InvalidArgument("page_token is malformed")
    return int(token[1:])
