"""WatchRevocations: the log after a cursor, then live events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from authsvc.errors import InvalidArgument

from .deps import Deps
from .models import Revocation


async def revocations(deps: Deps, cursor: int) -> AsyncIterator[tuple[Revocation, int]]:
    """Yield (event, resume cursor). The subscription starts before the log is
    read, so an event committed in between arrives by one path or the other
    (duplicates are dropped), never by neither."""
    if cursor < 0:
        raise InvalidArgument("cursor must not be negative")
    live = deps.live
    queue = live.subscribe()
    try:
        backlog = await deps.store.revocations_after(cursor, (), deps.clock.now())
        sent: set[int] = set()
        highest = cursor
        for entry in backlog:
            sent.add(entry.seq)
            highest = max(highest, entry.seq)
            yield entry, min(live.low_water, highest)
        while True:
            event = await queue.get()
            if event is None:
                return
            if event.seq in sent or event.seq <= cursor:
                continue
            highest = max(highest, event.seq)
            yield event, min(live.low_water, highest)
    finally:
        live.unsubscribe(queue)
