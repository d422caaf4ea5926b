"""Exponential backoff: one rule for every retry loop.

The delay before retry n (1 = the first) is `initial * 2^(n-1)`, capped at
`maximum`, optionally times a jitter factor drawn from 0.5..1.

* `Backoff` counts the retries itself (a loop that reconnects a camera or
  pcscd): `next()` gives the delay to wait now, `reset()` starts again from
  `initial` once things work.
* `delay_for` is the same rule without state, for a caller that keeps the
  retry count elsewhere (the order outbox stores it in SQLite).
"""

from __future__ import annotations

import random

JITTER_RANGE = (0.5, 1.0)
_MAX_DOUBLINGS = 64          # initial * 2^64 passes any maximum; keeps the float finite forever


def delay_for(attempt: int, initial: float, maximum: float, jitter_factor: float = 1.0) -> float:
    """The delay before retry `attempt` (1 = the first): initial * 2^(attempt-1), capped, times jitter_factor."""
    doublings = min(max(0, attempt - 1), _MAX_DOUBLINGS)
    return min(maximum, initial * 2 ** doublings) * jitter_factor


def jitter_factor(rng: random.Random) -> float:
    """A random factor in JITTER_RANGE (0.5..1): spreads retries that failed together."""
    return rng.uniform(*JITTER_RANGE)


class Backoff:
    """Delays that double from `initial` up to `maximum`, with optional jitter.

    Not thread-safe: give each retry loop its own.
    """

    def __init__(self, initial: float, maximum: float, jitter: bool = False, rng: random.Random | None = None):
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.rng = rng if rng is not None else random.Random()
        self.attempts = 0

    def next(self) -> float:
        """The delay to wait before the next retry; each call doubles the following one."""
        self.attempts += 1
        return delay_for(self.attempts, self.initial, self.maximum,
                         jitter_factor(self.rng) if self.jitter else 1.0)

    def reset(self) -> None:
        """It worked: the next delay is `initial` again."""
        self.attempts = 0
