"""Everything a use case needs, wired once by the server."""

from __future__ import annotations

from dataclasses import dataclass

from .clock import Clock
from .kek import Kek
from .live import LiveState
from .passwords import Passwords
from .policy import Policy
from .ports import Store


@dataclass(frozen=True, slots=True)
class Deps:
    store: Store
    clock: Clock
    policy: Policy
    kek: Kek
    passwords: Passwords
    live: LiveState
