"""A fixed-rate ticker for capture, kept apart from the clock so tests can drive it."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Ticks at ``fps`` on a schedule fixed from the start, so waiting errors never add up.

    A late tick does not shift the schedule (no drift); a tick more than a whole period late
    drops the missed ticks instead of firing them in a burst, because a burst of identical
    newest frames is worth nothing to a viewer.
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = 1.0 / fps
        self._clock = clock
        self._next = clock() - self.period

    def delay(self) -> float:
        """Seconds to wait until the next tick, which it then counts as taken."""
        now = self._clock()
        self._next += self.period
        if self._next < now - self.period:
            self._next = now
        return max(0.0, self._next - now)
