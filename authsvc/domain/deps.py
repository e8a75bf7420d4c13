"""Everything a use case needs, wired once by the server."""

from __future__ import annotations

from dataclasses import dataclass

from authsvc.domain.clock import Clock
from authsvc.domain.identity.passwords import Passwords
from authsvc.domain.policy import Policy
from authsvc.domain.ports import Store
from authsvc.domain.tokens.kek import Kek
from authsvc.domain.tokens.live import LiveState


@dataclass(frozen=True, slots=True)
class Deps:
    store: Store
    clock: Clock
    policy: Policy
    kek: Kek
    passwords: Passwords
    live: LiveState
