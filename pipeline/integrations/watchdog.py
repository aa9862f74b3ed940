"""camera_lost when a camera's frames stop, camera_found when they come back: events no stage sends.

Only the frames' headers count (which camera, its seq): the JPEG is never decoded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config.options import MAX_CAMERAS
from pipeline.protocol import Event, Frame
from pipeline.stage.ratelog import RateLimitedLog

log = logging.getLogger("camserver.hooks")


@dataclass
class Seen:
    """When a camera's last frame came (monotonic), its last seq, and whether it counts as lost."""

    at: float
    seq: int
    lost: bool = False


class Watchdog:
    """camera_lost when a camera's frames stop for ``after_s``, camera_found when they come back."""

    def __init__(self, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._after, self._clock = after_s, clock
        self._cameras: dict[str, Seen] = {}
        self._notes = RateLimitedLog(log)

    def frame(self, frame: Frame) -> Event | None:
        now = self._clock()
        seen = self._cameras.get(frame.camera)
        if seen is None:
            if len(self._cameras) >= MAX_CAMERAS:
                self._notes.warning("cameras", "ignoring camera %s: already watching %d cameras", frame.camera,
                                    len(self._cameras))
                return None
            self._cameras[frame.camera] = Seen(now, frame.seq)
            return None
        silent = now - seen.at
        found = seen.lost
        seen.at, seen.seq, seen.lost = now, frame.seq, False
        if found:
            return Event(frame.camera, frame.seq, frame.ts, "camera_found", {"silent_s": round(silent, 1)})
        return None

    def tick(self) -> list[Event]:
        now, lost = self._clock(), []
        for camera, seen in self._cameras.items():
            if not seen.lost and now - seen.at >= self._after:
                seen.lost = True
                lost.append(Event(camera, seen.seq, time.time(), "camera_lost", {"silent_s": round(now - seen.at, 1)}))
        return lost
