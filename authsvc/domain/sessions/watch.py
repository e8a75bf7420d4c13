"""WatchRevocations: the log after a cursor, then live events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from authsvc.domain.deps import Deps
from authsvc.domain.models import Revocation
from authsvc.errors import InvalidArgument, StreamEnded

BACKLOG_PAGE = 5_000


async def revocations(deps: Deps, cursor: int) -> AsyncIterator[tuple[Revocation | None, int]]:
    """Yield (event, resume cursor); one ``(None, cursor)`` marks the end of
    the backlog. The subscription starts before the log is read, so an event
    committed in between arrives by one path or the other (duplicates are
    dropped), never by neither. The backlog is read page by page, to its end."""
    if cursor < 0:
        raise InvalidArgument("cursor must not be negative")
    live = deps.live
    queue = live.subscribe()
    try:
        sent: set[int] = set()
        highest = after = cursor
        while True:
            page = await deps.store.revocations_after(after, (), deps.clock.now(), BACKLOG_PAGE)
            for entry in page:
                sent.add(entry.seq)
                highest = after = max(highest, entry.seq)
                yield entry, min(live.low_water, highest)
            if len(page) < BACKLOG_PAGE:
                break
        yield None, min(live.low_water, highest)
        while True:
            event = await queue.get()
            if event is None:  # cut off by the server: never a clean end of the stream
                raise StreamEnded()
            if event.seq in sent or event.seq <= cursor:
                continue
            highest = max(highest, event.seq)
            yield event, min(live.low_water, highest)
    finally:
        live.unsubscribe(queue)
