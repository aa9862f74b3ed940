"""Warnings that an attacker or a broken peer can repeat thousands of times a second, logged calmly.

The first occurrence of a kind is logged at once; further ones within the interval are only
counted, and the next line of that kind after the interval says how many were not shown. So a
flood costs one line per interval, and nothing is hidden from the person reading the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

INTERVAL_S = 10.0


class RateLimitedLog:
    """Per-kind rate limiting of log lines; ``kind`` is any short string naming the problem."""

    def __init__(self, log: logging.Logger, interval_s: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log, self._interval, self._clock = log, interval_s, clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log now or count for later; True when the line was written (with the traceback if asked)."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        hidden = self._suppressed.pop(kind, 0)
        if hidden:
            message += f" (and {hidden} more like it in the last {now - last:.0f} s)"
        self._log.log(level, message, *args, exc_info=exc_info)
        return True

    def warning(self, kind: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, message, *args)
