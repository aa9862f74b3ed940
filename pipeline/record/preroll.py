"""The newest few seconds of one camera's frames, so a recording can start before its trigger."""

from __future__ import annotations

import math
from collections import deque

from pipeline.protocol import Frame

# No camera sends more; a peer sending frames faster (or all with one ts) cannot grow the buffer past it.
MAX_FPS = 120


class PreRoll:
    """Frames of the last ``seconds`` of capture time (by header ``ts``), oldest first.

    Measured in capture time, not in frames, so the pre-roll lasts as long as asked whatever the
    frame rate and however many frames were dropped on the way.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._frames: deque[Frame] = deque(maxlen=math.ceil(seconds * MAX_FPS) + 1)

    def add(self, frame: Frame) -> None:
        if self._frames and frame.ts < self._frames[-1].ts:
            self._frames.clear()  # capture restarted with an earlier clock: the old frames are another scene
        self._frames.append(frame)
        while self._frames[0].ts < frame.ts - self.seconds:
            self._frames.popleft()

    def since(self, ts: float) -> list[Frame]:
        """The frames captured at or after ``ts``."""
        return [frame for frame in self._frames if frame.ts >= ts]

    def find(self, seq: int) -> Frame | None:
        return next((frame for frame in reversed(self._frames) if frame.seq == seq), None)

    def __len__(self) -> int:
        return len(self._frames)
