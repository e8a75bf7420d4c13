"""Exponential backoff with full jitter, for retries and reconnects."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far apart to try again.

    ``max_attempts`` counts the first try (1 means never retry). The n-th wait
    is drawn uniformly from ``[0, min(max_backoff, initial_backoff * multiplier**(n-1))]``
    ("full jitter"), so that many clients failing together do not come back together.
    """

    max_attempts: int = 3
    initial_backoff: float = 0.1  # seconds
    max_backoff: float = 2.0  # seconds
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must not be negative and the multiplier at least 1")

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (1 for the first)."""
        exponent = min(max(retry - 1, 0), 64)  # no float overflow after many reconnects
        return min(self.max_backoff, self.initial_backoff * self.multiplier**exponent)

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """A jittered wait before retry number ``retry`` (1 for the first)."""
        return (rng or random).uniform(0.0, self.ceiling(retry))
